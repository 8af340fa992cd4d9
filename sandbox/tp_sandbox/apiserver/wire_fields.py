"""Protobuf field numbers of the Kubernetes types the sandbox encodes (facts of the API's
wire format), keyed by OpenAPI definition name.

Only names and numbers live here; each field's wire type comes from the same OpenAPI
schema the rest of the API server reads (`schema`), so the two cannot disagree.

Each entry is a space-separated list of tokens:

    name=N      JSON property `name` is field N
    name=N?     ... and is a Go pointer: a zero value (0, false, "") sent on the wire is
                meaningful and kept when decoding (other scalars' zero values are what Go
                marshals for "unset", so the decoder drops them, as JSON's omitempty does)
    +N=Def      field N is an embedded struct (`json:",inline"`): its message's fields
                are the JSON object's own properties

`ALWAYS` lists the scalar fields JSON shows even when zero (no `omitempty` in Go): the
decoder keeps their zero values too.

`apiVersion`/`kind` are never listed: on the wire they live in the envelope
(`runtime.Unknown.typeMeta`). `<Kind>List` types need no entry (metadata=1 items=2).
"""

from __future__ import annotations

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
CORE = "io.k8s.api.core.v1."
APPS = "io.k8s.api.apps.v1."
RBAC = "io.k8s.api.rbac.v1."
AUTHZ = "io.k8s.api.authorization.v1."
AUTHN = "io.k8s.api.authentication.v1."
POLICY = "io.k8s.api.policy.v1."
BATCH = "io.k8s.api.batch.v1."
DISCOVERY = "io.k8s.api.discovery.v1."
AUTOSCALING = "io.k8s.api.autoscaling.v1."
APIEXT = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1."
RUNTIME = "io.k8s.apimachinery.pkg.runtime."

_META = {
    "ObjectMeta": "name=1 generateName=2 namespace=3 selfLink=4 uid=5 resourceVersion=6 "
                  "generation=7 creationTimestamp=8 deletionTimestamp=9 "
                  "deletionGracePeriodSeconds=10? labels=11 annotations=12 "
                  "ownerReferences=13 finalizers=14 managedFields=17",
    "ListMeta": "selfLink=1 resourceVersion=2 continue=3 remainingItemCount=4?",
    "OwnerReference": "kind=1 name=3 uid=4 apiVersion=5 controller=6? blockOwnerDeletion=7?",
    "ManagedFieldsEntry": "manager=1 operation=2 apiVersion=3 time=4 fieldsType=6 "
                          "fieldsV1=7 subresource=8",
    "LabelSelector": "matchLabels=1 matchExpressions=2",
    "LabelSelectorRequirement": "key=1 operator=2 values=3",
    "FieldSelectorRequirement": "key=1 operator=2 values=3",
    "Status": "metadata=1 status=2 message=3 reason=4 details=5 code=6",
    "StatusDetails": "name=1 group=2 kind=3 causes=4 retryAfterSeconds=5 uid=6",
    "StatusCause": "reason=1 message=2 field=3",
    "Condition": "type=1 status=2 observedGeneration=3 lastTransitionTime=4 reason=5 "
                 "message=6",
    "DeleteOptions": "gracePeriodSeconds=1? preconditions=2 orphanDependents=3? "
                     "propagationPolicy=4 dryRun=5",
    "Preconditions": "uid=1? resourceVersion=2?",
}

_CORE = {
    "Namespace": "metadata=1 spec=2 status=3",
    "NamespaceSpec": "finalizers=1",
    "NamespaceStatus": "phase=1 conditions=2",
    "NamespaceCondition": "type=1 status=2 lastTransitionTime=4 reason=5 message=6",
    "ConfigMap": "metadata=1 data=2 binaryData=3 immutable=4?",
    "Secret": "metadata=1 data=2 type=3 stringData=4 immutable=5?",
    "ServiceAccount": "metadata=1 secrets=2 imagePullSecrets=3 "
                      "automountServiceAccountToken=4?",
    "ObjectReference": "kind=1 namespace=2 name=3 uid=4 apiVersion=5 resourceVersion=6 "
                       "fieldPath=7",
    "LocalObjectReference": "name=1",
    "Service": "metadata=1 spec=2 status=3",
    "ServiceSpec": "ports=1 selector=2 clusterIP=3 type=4 externalIPs=5 sessionAffinity=7 "
                   "loadBalancerIP=8 loadBalancerSourceRanges=9 externalName=10 "
                   "externalTrafficPolicy=11 healthCheckNodePort=12 "
                   "publishNotReadyAddresses=13 sessionAffinityConfig=14 "
                   "ipFamilyPolicy=17? clusterIPs=18 ipFamilies=19 "
                   "allocateLoadBalancerNodePorts=20? loadBalancerClass=21? "
                   "internalTrafficPolicy=22? trafficDistribution=23?",
    "ServicePort": "name=1 protocol=2 port=3 targetPort=4 nodePort=5 appProtocol=6?",
    "ServiceStatus": "loadBalancer=1 conditions=2",
    "LoadBalancerStatus": "ingress=1",
    "LoadBalancerIngress": "ip=1 hostname=2 ipMode=3? ports=4",
    "PortStatus": "port=1 protocol=2 error=3?",
    "SessionAffinityConfig": "clientIP=1",
    "ClientIPConfig": "timeoutSeconds=1?",
    "Endpoints": "metadata=1 subsets=2",
    "EndpointSubset": "addresses=1 notReadyAddresses=2 ports=3",
    "EndpointAddress": "ip=1 targetRef=2 hostname=3 nodeName=4?",
    "EndpointPort": "name=1 port=2 protocol=3 appProtocol=4?",
    "Pod": "metadata=1 spec=2 status=3",
    "PodTemplateSpec": "metadata=1 spec=2",
    "PodSpec": "volumes=1 containers=2 restartPolicy=3 terminationGracePeriodSeconds=4? "
               "activeDeadlineSeconds=5? dnsPolicy=6 nodeSelector=7 serviceAccountName=8 "
               "serviceAccount=9 nodeName=10 hostNetwork=11 hostPID=12 hostIPC=13 "
               "securityContext=14 imagePullSecrets=15 hostname=16 subdomain=17 affinity=18 "
               "schedulerName=19 initContainers=20 automountServiceAccountToken=21? "
               "tolerations=22 hostAliases=23 priorityClassName=24 priority=25? "
               "dnsConfig=26 shareProcessNamespace=27? readinessGates=28 "
               "runtimeClassName=29? enableServiceLinks=30? preemptionPolicy=31? "
               "overhead=32 topologySpreadConstraints=33 setHostnameAsFQDN=35? os=36 "
               "hostUsers=37? schedulingGates=38 resourceClaims=39 resources=40 "
               "hostnameOverride=41?",
    "Container": "name=1 image=2 command=3 args=4 workingDir=5 ports=6 env=7 resources=8 "
                 "volumeMounts=9 livenessProbe=10 readinessProbe=11 lifecycle=12 "
                 "terminationMessagePath=13 imagePullPolicy=14 securityContext=15 stdin=16 "
                 "stdinOnce=17 tty=18 envFrom=19 terminationMessagePolicy=20 "
                 "volumeDevices=21 startupProbe=22 resizePolicy=23 restartPolicy=24? "
                 "restartPolicyRules=25",
    "ContainerPort": "name=1 hostPort=2 containerPort=3 protocol=4 hostIP=5",
    "ContainerResizePolicy": "resourceName=1 restartPolicy=2",
    "ContainerRestartRule": "action=1 exitCodes=2",
    "ContainerRestartRuleOnExitCodes": "operator=1 values=2",
    "EnvVar": "name=1 value=2 valueFrom=3",
    "EnvVarSource": "fieldRef=1 resourceFieldRef=2 configMapKeyRef=3 secretKeyRef=4 "
                    "fileKeyRef=5",
    "ObjectFieldSelector": "apiVersion=1 fieldPath=2",
    "ResourceFieldSelector": "containerName=1 resource=2 divisor=3",
    "ConfigMapKeySelector": f"+1={CORE}LocalObjectReference key=2 optional=3?",
    "SecretKeySelector": f"+1={CORE}LocalObjectReference key=2 optional=3?",
    "FileKeySelector": "volumeName=1 path=2 key=3 optional=4?",
    "EnvFromSource": "prefix=1 configMapRef=2 secretRef=3",
    "ConfigMapEnvSource": f"+1={CORE}LocalObjectReference optional=2?",
    "SecretEnvSource": f"+1={CORE}LocalObjectReference optional=2?",
    "ResourceRequirements": "limits=1 requests=2 claims=3",
    "ResourceClaim": "name=1 request=2",
    "VolumeMount": "name=1 readOnly=2 mountPath=3 subPath=4 mountPropagation=5? "
                   "subPathExpr=6 recursiveReadOnly=7?",
    "VolumeDevice": "name=1 devicePath=2",
    "Probe": f"+1={CORE}ProbeHandler initialDelaySeconds=2 timeoutSeconds=3 periodSeconds=4 "
             "successThreshold=5 failureThreshold=6 terminationGracePeriodSeconds=7?",
    "ProbeHandler": "exec=1 httpGet=2 tcpSocket=3 grpc=4",
    "LifecycleHandler": "exec=1 httpGet=2 tcpSocket=3 sleep=4",
    "Lifecycle": "postStart=1 preStop=2 stopSignal=3?",
    "ExecAction": "command=1",
    "HTTPGetAction": "path=1 port=2 host=3 scheme=4 httpHeaders=5",
    "HTTPHeader": "name=1 value=2",
    "TCPSocketAction": "port=1 host=2",
    "GRPCAction": "port=1 service=2?",
    "SleepAction": "seconds=1",
    "SecurityContext": "capabilities=1 privileged=2? seLinuxOptions=3 runAsUser=4? "
                       "runAsNonRoot=5? readOnlyRootFilesystem=6? "
                       "allowPrivilegeEscalation=7? runAsGroup=8? procMount=9? "
                       "windowsOptions=10 seccompProfile=11 appArmorProfile=12",
    "Capabilities": "add=1 drop=2",
    "SELinuxOptions": "user=1 role=2 type=3 level=4",
    "WindowsSecurityContextOptions": "gmsaCredentialSpecName=1? gmsaCredentialSpec=2? "
                                     "runAsUserName=3? hostProcess=4?",
    "SeccompProfile": "type=1 localhostProfile=2?",
    "AppArmorProfile": "type=1 localhostProfile=2?",
    "PodSecurityContext": "seLinuxOptions=1 runAsUser=2? runAsNonRoot=3? "
                          "supplementalGroups=4 fsGroup=5? runAsGroup=6? sysctls=7 "
                          "windowsOptions=8 fsGroupChangePolicy=9? seccompProfile=10 "
                          "appArmorProfile=11 supplementalGroupsPolicy=12? "
                          "seLinuxChangePolicy=13?",
    "Sysctl": "name=1 value=2",
    "Volume": f"name=1 +2={CORE}VolumeSource",
    "VolumeSource": "hostPath=1 emptyDir=2 secret=6 persistentVolumeClaim=10 "
                    "downwardAPI=16 configMap=19 projected=26 csi=28 image=30",
    "HostPathVolumeSource": "path=1 type=2?",
    "EmptyDirVolumeSource": "medium=1 sizeLimit=2",
    "SecretVolumeSource": "secretName=1 items=2 defaultMode=3? optional=4?",
    "ConfigMapVolumeSource": f"+1={CORE}LocalObjectReference items=2 defaultMode=3? "
                             "optional=4?",
    "KeyToPath": "key=1 path=2 mode=3?",
    "PersistentVolumeClaimVolumeSource": "claimName=1 readOnly=2",
    "PersistentVolumeClaim": "metadata=1 spec=2 status=3",
    "PersistentVolumeClaimSpec": "accessModes=1 resources=2 volumeName=3 selector=4 "
                                 "storageClassName=5? volumeMode=6? dataSource=7 "
                                 "dataSourceRef=8 volumeAttributesClassName=9?",
    "VolumeResourceRequirements": "limits=1 requests=2",
    "TypedLocalObjectReference": "apiGroup=1? kind=2 name=3",
    "TypedObjectReference": "apiGroup=1? kind=2 name=3 namespace=4?",
    "PersistentVolumeClaimStatus": "phase=1 accessModes=2 capacity=3 conditions=4 "
                                   "allocatedResources=5 allocatedResourceStatuses=7 "
                                   "currentVolumeAttributesClassName=8?",
    "PersistentVolumeClaimCondition": "type=1 status=2 lastProbeTime=3 "
                                      "lastTransitionTime=4 reason=5 message=6",
    "DownwardAPIVolumeSource": "items=1 defaultMode=2?",
    "DownwardAPIVolumeFile": "path=1 fieldRef=2 resourceFieldRef=3 mode=4?",
    "DownwardAPIProjection": "items=1",
    "ProjectedVolumeSource": "sources=1 defaultMode=2?",
    "VolumeProjection": "secret=1 downwardAPI=2 configMap=3 serviceAccountToken=4 "
                        "clusterTrustBundle=5",
    "SecretProjection": f"+1={CORE}LocalObjectReference items=2 optional=4?",
    "ConfigMapProjection": f"+1={CORE}LocalObjectReference items=2 optional=4?",
    "ServiceAccountTokenProjection": "audience=1 expirationSeconds=2? path=3",
    "ClusterTrustBundleProjection": "name=1? signerName=2? labelSelector=3 path=4 "
                                    "optional=5?",
    "CSIVolumeSource": "driver=1 readOnly=2? fsType=3? volumeAttributes=4 "
                       "nodePublishSecretRef=5",
    "ImageVolumeSource": "reference=1 pullPolicy=2",
    "Toleration": "key=1 operator=2 value=3 effect=4 tolerationSeconds=5?",
    "HostAlias": "ip=1 hostnames=2",
    "PodDNSConfig": "nameservers=1 searches=2 options=3",
    "PodDNSConfigOption": "name=1 value=2?",
    "PodReadinessGate": "conditionType=1",
    "PodOS": "name=1",
    "PodSchedulingGate": "name=1",
    "PodResourceClaim": "name=1 resourceClaimName=3? resourceClaimTemplateName=4?",
    "Affinity": "nodeAffinity=1 podAffinity=2 podAntiAffinity=3",
    "NodeAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1 "
                    "preferredDuringSchedulingIgnoredDuringExecution=2",
    "NodeSelector": "nodeSelectorTerms=1",
    "NodeSelectorTerm": "matchExpressions=1 matchFields=2",
    "NodeSelectorRequirement": "key=1 operator=2 values=3",
    "PreferredSchedulingTerm": "weight=1 preference=2",
    "PodAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1 "
                   "preferredDuringSchedulingIgnoredDuringExecution=2",
    "PodAntiAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1 "
                       "preferredDuringSchedulingIgnoredDuringExecution=2",
    "PodAffinityTerm": "labelSelector=1 namespaces=2 topologyKey=3 namespaceSelector=4 "
                       "matchLabelKeys=5 mismatchLabelKeys=6",
    "WeightedPodAffinityTerm": "weight=1 podAffinityTerm=2",
    "TopologySpreadConstraint": "maxSkew=1 topologyKey=2 whenUnsatisfiable=3 "
                                "labelSelector=4 minDomains=5? nodeAffinityPolicy=6? "
                                "nodeTaintsPolicy=7? matchLabelKeys=8",
    "PodStatus": "phase=1 conditions=2 message=3 reason=4 hostIP=5 podIP=6 startTime=7 "
                 "containerStatuses=8 qosClass=9 initContainerStatuses=10 "
                 "nominatedNodeName=11 podIPs=12 ephemeralContainerStatuses=13 resize=14 "
                 "resourceClaimStatuses=15 hostIPs=16 observedGeneration=17",
    "PodCondition": "type=1 status=2 lastProbeTime=3 lastTransitionTime=4 reason=5 "
                    "message=6 observedGeneration=7",
    "PodIP": "ip=1",
    "HostIP": "ip=1",
    "ContainerStatus": "name=1 state=2 lastState=3 ready=4 restartCount=5 image=6 "
                       "imageID=7 containerID=8 started=9? allocatedResources=10 "
                       "resources=11 volumeMounts=12 stopSignal=15?",
    "ContainerState": "waiting=1 running=2 terminated=3",
    "ContainerStateWaiting": "reason=1 message=2",
    "ContainerStateRunning": "startedAt=1",
    "ContainerStateTerminated": "exitCode=1 signal=2 reason=3 message=4 startedAt=5 "
                                "finishedAt=6 containerID=7",
    "VolumeMountStatus": "name=1 mountPath=2 readOnly=3 recursiveReadOnly=4?",
    "Binding": "metadata=1 target=2",
    "Node": "metadata=1 spec=2 status=3",
    "NodeSpec": "podCIDR=1 externalID=2 providerID=3 unschedulable=4 taints=5 podCIDRs=7",
    "Taint": "key=1 value=2 effect=3 timeAdded=4",
    "NodeStatus": "capacity=1 allocatable=2 phase=3 conditions=4 addresses=5 "
                  "daemonEndpoints=6 nodeInfo=7 images=8 volumesInUse=9 volumesAttached=10 "
                  "runtimeHandlers=12 features=13 declaredFeatures=14",
    "NodeCondition": "type=1 status=2 lastHeartbeatTime=3 lastTransitionTime=4 reason=5 "
                     "message=6",
    "NodeAddress": "type=1 address=2",
    "NodeDaemonEndpoints": "kubeletEndpoint=1",
    "DaemonEndpoint": "Port=1",
    "NodeSystemInfo": "machineID=1 systemUUID=2 bootID=3 kernelVersion=4 osImage=5 "
                      "containerRuntimeVersion=6 kubeletVersion=7 kubeProxyVersion=8 "
                      "operatingSystem=9 architecture=10 swap=11",
    "NodeSwapStatus": "capacity=1?",
    "ContainerImage": "names=1 sizeBytes=2",
    "AttachedVolume": "name=1 devicePath=2",
    "NodeRuntimeHandler": "name=1 features=2",
    "NodeRuntimeHandlerFeatures": "recursiveReadOnlyMounts=1? userNamespaces=2?",
    "NodeFeatures": "supplementalGroupsPolicy=1?",
    "Event": "metadata=1 involvedObject=2 reason=3 message=4 source=5 firstTimestamp=6 "
             "lastTimestamp=7 count=8 type=9 eventTime=10 series=11 action=12 related=13 "
             "reportingComponent=14 reportingInstance=15",
    "EventSource": "component=1 host=2",
    "EventSeries": "count=1 lastObservedTime=2",
}

_APPS = {
    "Deployment": "metadata=1 spec=2 status=3",
    "DeploymentSpec": "replicas=1? selector=2 template=3 strategy=4 minReadySeconds=5 "
                      "revisionHistoryLimit=6? paused=7 progressDeadlineSeconds=9?",
    "DeploymentStrategy": "type=1 rollingUpdate=2",
    "RollingUpdateDeployment": "maxUnavailable=1? maxSurge=2?",
    "DeploymentStatus": "observedGeneration=1 replicas=2 updatedReplicas=3 "
                        "availableReplicas=4 unavailableReplicas=5 conditions=6 "
                        "readyReplicas=7 collisionCount=8? terminatingReplicas=9?",
    "DeploymentCondition": "type=1 status=2 reason=4 message=5 lastUpdateTime=6 "
                           "lastTransitionTime=7",
    "ReplicaSet": "metadata=1 spec=2 status=3",
    "ReplicaSetSpec": "replicas=1? selector=2 template=3 minReadySeconds=4",
    "ReplicaSetStatus": "replicas=1 fullyLabeledReplicas=2 observedGeneration=3 "
                        "readyReplicas=4 availableReplicas=5 conditions=6 "
                        "terminatingReplicas=7?",
    "ReplicaSetCondition": "type=1 status=2 lastTransitionTime=3 reason=4 message=5",
    "StatefulSet": "metadata=1 spec=2 status=3",
    "StatefulSetSpec": "replicas=1? selector=2 template=3 volumeClaimTemplates=4 "
                       "serviceName=5 podManagementPolicy=6 updateStrategy=7 "
                       "revisionHistoryLimit=8? minReadySeconds=9 "
                       "persistentVolumeClaimRetentionPolicy=10 ordinals=11",
    "StatefulSetUpdateStrategy": "type=1 rollingUpdate=2",
    "RollingUpdateStatefulSetStrategy": "partition=1? maxUnavailable=2",
    "StatefulSetPersistentVolumeClaimRetentionPolicy": "whenDeleted=1 whenScaled=2",
    "StatefulSetOrdinals": "start=1",
    "StatefulSetStatus": "observedGeneration=1 replicas=2 readyReplicas=3 currentReplicas=4 "
                         "updatedReplicas=5 currentRevision=6 updateRevision=7 "
                         "collisionCount=9? conditions=10 availableReplicas=11",
    "StatefulSetCondition": "type=1 status=2 lastTransitionTime=3 reason=4 message=5",
    "DaemonSet": "metadata=1 spec=2 status=3",
    "DaemonSetSpec": "selector=1 template=2 updateStrategy=3 minReadySeconds=4 "
                     "revisionHistoryLimit=6?",
    "DaemonSetUpdateStrategy": "type=1 rollingUpdate=2",
    "RollingUpdateDaemonSet": "maxUnavailable=1? maxSurge=2?",
    "DaemonSetStatus": "currentNumberScheduled=1 numberMisscheduled=2 "
                       "desiredNumberScheduled=3 numberReady=4 observedGeneration=5 "
                       "updatedNumberScheduled=6 numberAvailable=7 numberUnavailable=8 "
                       "collisionCount=9? conditions=10",
    "DaemonSetCondition": "type=1 status=2 lastTransitionTime=3 reason=4 message=5",
    "ControllerRevision": "metadata=1 data=2 revision=3",
}

_BATCH = {
    "Job": "metadata=1 spec=2 status=3",
    "JobSpec": "parallelism=1? completions=2? activeDeadlineSeconds=3? selector=4 "
               "manualSelector=5? template=6 backoffLimit=7? ttlSecondsAfterFinished=8? "
               "completionMode=9? suspend=10? podFailurePolicy=11 backoffLimitPerIndex=12? "
               "maxFailedIndexes=13? podReplacementPolicy=14? managedBy=15? "
               "successPolicy=16",
    "JobStatus": "conditions=1 startTime=2 completionTime=3 active=4 succeeded=5 failed=6 "
                 "completedIndexes=7 uncountedTerminatedPods=8 ready=9? failedIndexes=10? "
                 "terminating=11?",
    "JobCondition": "type=1 status=2 lastProbeTime=3 lastTransitionTime=4 reason=5 "
                    "message=6",
    "UncountedTerminatedPods": "succeeded=1 failed=2",
    "PodFailurePolicy": "rules=1",
    "PodFailurePolicyRule": "action=1 onExitCodes=2 onPodConditions=3",
    "PodFailurePolicyOnExitCodesRequirement": "containerName=1? operator=2 values=3",
    "PodFailurePolicyOnPodConditionsPattern": "type=1 status=2",
    "SuccessPolicy": "rules=1",
    "SuccessPolicyRule": "succeededIndexes=1? succeededCount=2?",
    "JobTemplateSpec": "metadata=1 spec=2",
    "CronJob": "metadata=1 spec=2 status=3",
    "CronJobSpec": "schedule=1 startingDeadlineSeconds=2? concurrencyPolicy=3 suspend=4? "
                   "jobTemplate=5 successfulJobsHistoryLimit=6? failedJobsHistoryLimit=7? "
                   "timeZone=8?",
    "CronJobStatus": "active=1 lastScheduleTime=4 lastSuccessfulTime=5",
}

_RBAC = {
    "Role": "metadata=1 rules=2",
    "ClusterRole": "metadata=1 rules=2 aggregationRule=3",
    "PolicyRule": "verbs=1 apiGroups=2 resources=3 resourceNames=4 nonResourceURLs=5",
    "AggregationRule": "clusterRoleSelectors=1",
    "RoleBinding": "metadata=1 subjects=2 roleRef=3",
    "ClusterRoleBinding": "metadata=1 subjects=2 roleRef=3",
    "Subject": "kind=1 apiGroup=2 name=3 namespace=4",
    "RoleRef": "apiGroup=1 kind=2 name=3",
}

_AUTHZ = {
    "SelfSubjectAccessReview": "metadata=1 spec=2 status=3",
    "SelfSubjectAccessReviewSpec": "resourceAttributes=1 nonResourceAttributes=2",
    "SubjectAccessReview": "metadata=1 spec=2 status=3",
    "SubjectAccessReviewSpec": "resourceAttributes=1 nonResourceAttributes=2 user=3 "
                               "groups=4 extra=5 uid=6",
    "SubjectAccessReviewStatus": "allowed=1 reason=2 evaluationError=3 denied=4",
    "ResourceAttributes": "namespace=1 verb=2 group=3 version=4 resource=5 subresource=6 "
                          "name=7 fieldSelector=8 labelSelector=9",
    "NonResourceAttributes": "path=1 verb=2",
    "FieldSelectorAttributes": "rawSelector=1 requirements=2",
    "LabelSelectorAttributes": "rawSelector=1 requirements=2",
    "LocalSubjectAccessReview": "metadata=1 spec=2 status=3",
    "SelfSubjectRulesReview": "metadata=1 spec=2 status=3",
    "SelfSubjectRulesReviewSpec": "namespace=1",
    "SubjectRulesReviewStatus": "resourceRules=1 nonResourceRules=2 incomplete=3 "
                                "evaluationError=4",
    "ResourceRule": "verbs=1 apiGroups=2 resources=3 resourceNames=4",
    "NonResourceRule": "verbs=1 nonResourceURLs=2",
}

_AUTHN = {
    "SelfSubjectReview": "metadata=1 status=2",
    "SelfSubjectReviewStatus": "userInfo=1",
    "UserInfo": "username=1 uid=2 groups=3 extra=4",
    "TokenReview": "metadata=1 spec=2 status=3",
    "TokenReviewSpec": "token=1 audiences=2",
    "TokenReviewStatus": "authenticated=1 user=2 error=3 audiences=4",
    "TokenRequest": "metadata=1 spec=2 status=3",
    "TokenRequestSpec": "audiences=1 boundObjectRef=3 expirationSeconds=4?",
    "TokenRequestStatus": "token=1 expirationTimestamp=2",
    "BoundObjectReference": "kind=1 apiVersion=2 name=3 uid=4",
}

_DISCOVERY = {
    "EndpointSlice": "metadata=1 endpoints=2 ports=3 addressType=4",
    "Endpoint": "addresses=1 conditions=2 hostname=3? targetRef=4 deprecatedTopology=5 "
                "nodeName=6? zone=7? hints=8",
    "EndpointConditions": "ready=1? serving=2? terminating=3?",
    "EndpointHints": "forZones=1 forNodes=2",
    "ForZone": "name=1",
    "ForNode": "name=1",
    "EndpointPort": "name=1? protocol=2? port=3? appProtocol=4?",
}

# JSON, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool and JSONSchemaPropsOrStringArray
# have JSON forms unlike their messages: `protobuf` maps them by hand.
_APIEXT = {
    "CustomResourceDefinition": "metadata=1 spec=2 status=3",
    "CustomResourceDefinitionSpec": "group=1 names=3 scope=4 versions=7 conversion=9 "
                                    "preserveUnknownFields=10",
    "CustomResourceDefinitionNames": "plural=1 singular=2 shortNames=3 kind=4 listKind=5 "
                                     "categories=6",
    "CustomResourceDefinitionVersion": "name=1 served=2 storage=3 schema=4 subresources=5 "
                                       "additionalPrinterColumns=6 deprecated=7 "
                                       "deprecationWarning=8? selectableFields=9",
    "CustomResourceValidation": "openAPIV3Schema=1",
    "CustomResourceSubresources": "status=1 scale=2",
    "CustomResourceSubresourceStatus": "",
    "CustomResourceSubresourceScale": "specReplicasPath=1 statusReplicasPath=2 "
                                      "labelSelectorPath=3?",
    "CustomResourceColumnDefinition": "name=1 type=2 format=3 description=4 priority=5 "
                                      "jsonPath=6",
    "SelectableField": "jsonPath=1",
    "CustomResourceConversion": "strategy=1 webhook=2",
    "WebhookConversion": "clientConfig=2 conversionReviewVersions=3",
    "WebhookClientConfig": "url=3? service=1 caBundle=2",
    "ServiceReference": "namespace=1 name=2 path=3? port=4?",
    "CustomResourceDefinitionStatus": "conditions=1 acceptedNames=2 storedVersions=3 "
                                      "observedGeneration=4",
    "CustomResourceDefinitionCondition": "type=1 status=2 lastTransitionTime=3 reason=4 "
                                         "message=5 observedGeneration=6",
    "JSONSchemaProps": "id=1 $schema=2 $ref=3? description=4 type=5 format=6 title=7 "
                       "default=8? maximum=9? exclusiveMaximum=10 minimum=11? "
                       "exclusiveMinimum=12 maxLength=13? minLength=14? pattern=15 "
                       "maxItems=16? minItems=17? uniqueItems=18 multipleOf=19? enum=20 "
                       "maxProperties=21? minProperties=22? required=23 items=24? allOf=25 "
                       "oneOf=26 anyOf=27 not=28? properties=29 additionalProperties=30? "
                       "patternProperties=31 dependencies=32 additionalItems=33? "
                       "definitions=34 externalDocs=35 example=36? nullable=37 "
                       "x-kubernetes-preserve-unknown-fields=38? "
                       "x-kubernetes-embedded-resource=39 x-kubernetes-int-or-string=40 "
                       "x-kubernetes-list-map-keys=41 x-kubernetes-list-type=42? "
                       "x-kubernetes-map-type=43? x-kubernetes-validations=44",
    "ExternalDocumentation": "description=1 url=2",
    "ValidationRule": "rule=1 message=2 messageExpression=3 reason=4? fieldPath=5 "
                      "optionalOldSelf=6?",
}

_SUBRESOURCES = {
    POLICY + "Eviction": "metadata=1 deleteOptions=2",
    AUTOSCALING + "Scale": "metadata=1 spec=2 status=3",
    AUTOSCALING + "ScaleSpec": "replicas=1",
    AUTOSCALING + "ScaleStatus": "replicas=1 selector=2",
}

FIELDS: dict[str, str] = {
    **{META + k: v for k, v in _META.items()},
    **{CORE + k: v for k, v in _CORE.items()},
    **{APPS + k: v for k, v in _APPS.items()},
    **{RBAC + k: v for k, v in _RBAC.items()},
    **{AUTHZ + k: v for k, v in _AUTHZ.items()},
    **{AUTHN + k: v for k, v in _AUTHN.items()},
    **{BATCH + k: v for k, v in _BATCH.items()},
    **{DISCOVERY + k: v for k, v in _DISCOVERY.items()},
    **{APIEXT + k: v for k, v in _APIEXT.items()},
    **_SUBRESOURCES,
}

# Scalars without `omitempty` (JSON shows their zero value), by definition.
_ALWAYS = {
    CORE: {
        "Volume": "name", "PersistentVolumeClaimVolumeSource": "claimName",
        "TypedObjectReference": "kind name", "TypedLocalObjectReference": "kind name",
        "PersistentVolumeClaimCondition": "type status", "HostPathVolumeSource": "path",
        "ServiceAccountTokenProjection": "path", "ClusterTrustBundleProjection": "path",
        "KeyToPath": "key path", "CSIVolumeSource": "driver", "ContainerPort": "containerPort",
        "VolumeMount": "name mountPath", "VolumeDevice": "name devicePath", "EnvVar": "name",
        "FileKeySelector": "volumeName path key", "ObjectFieldSelector": "fieldPath",
        "ResourceFieldSelector": "resource", "ConfigMapKeySelector": "key",
        "SecretKeySelector": "key", "HTTPHeader": "name value", "GRPCAction": "port",
        "SleepAction": "seconds", "ContainerResizePolicy": "resourceName restartPolicy",
        "ResourceClaim": "name", "Container": "name", "ContainerStateTerminated": "exitCode",
        "ContainerStatus": "name ready restartCount image imageID",
        "PodCondition": "type status", "VolumeMountStatus": "name mountPath",
        "NodeSelectorRequirement": "key operator", "WeightedPodAffinityTerm": "weight",
        "PodAffinityTerm": "topologyKey", "PreferredSchedulingTerm": "weight",
        "Taint": "key effect", "PodReadinessGate": "conditionType", "PodResourceClaim": "name",
        "PodOS": "name", "PodSchedulingGate": "name",
        "TopologySpreadConstraint": "maxSkew topologyKey whenUnsatisfiable",
        "HostAlias": "ip", "SeccompProfile": "type", "AppArmorProfile": "type", "PodIP": "ip",
        "HostIP": "ip", "ServicePort": "port", "EndpointAddress": "ip", "EndpointPort": "port",
        "DaemonEndpoint": "Port", "NodeRuntimeHandler": "name",
        "NodeSystemInfo": "machineID systemUUID bootID kernelVersion osImage "
                          "containerRuntimeVersion kubeletVersion kubeProxyVersion "
                          "operatingSystem architecture",
        "AttachedVolume": "name devicePath", "NodeCondition": "type status",
        "NodeAddress": "type address", "NamespaceCondition": "type status",
        "Event": "reportingComponent reportingInstance", "DownwardAPIVolumeFile": "path",
        "Sysctl": "name value", "PortStatus": "port protocol",
    },
    APPS: {
        "StatefulSetOrdinals": "start", "StatefulSetSpec": "serviceName",
        "StatefulSetStatus": "replicas availableReplicas",
        "StatefulSetCondition": "type status", "DeploymentCondition": "type status",
        "DaemonSetStatus": "currentNumberScheduled numberMisscheduled "
                           "desiredNumberScheduled numberReady",
        "DaemonSetCondition": "type status", "ReplicaSetStatus": "replicas",
        "ReplicaSetCondition": "type status", "ControllerRevision": "revision",
    },
    APIEXT: {
        "CustomResourceDefinitionSpec": "group scope", "CustomResourceConversion": "strategy",
        "CustomResourceDefinitionNames": "plural kind", "ServiceReference": "namespace name",
        "CustomResourceDefinitionVersion": "name served storage",
        "CustomResourceColumnDefinition": "name type jsonPath", "SelectableField": "jsonPath",
        "CustomResourceDefinitionCondition": "type status", "ValidationRule": "rule",
    },
    RBAC: {"Subject": "kind name", "RoleRef": "apiGroup kind name"},
    AUTHZ: {"SubjectAccessReviewStatus": "allowed", "SubjectRulesReviewStatus": "incomplete"},
    AUTHN: {"TokenRequestStatus": "token"},
    META: {"OwnerReference": "apiVersion kind name uid",
           "LabelSelectorRequirement": "key operator",
           "FieldSelectorRequirement": "key operator",
           "Condition": "type status reason message"},
    BATCH: {"PodFailurePolicyOnExitCodesRequirement": "operator",
            "PodFailurePolicyOnPodConditionsPattern": "type status",
            "PodFailurePolicyRule": "action", "JobCondition": "type status",
            "CronJobSpec": "schedule"},
    DISCOVERY: {"EndpointSlice": "addressType", "ForZone": "name", "ForNode": "name"},
    AUTOSCALING: {"ScaleStatus": "replicas"},
}
ALWAYS: dict[str, frozenset[str]] = {
    prefix + name: frozenset(fields.split())
    for prefix, table in _ALWAYS.items() for name, fields in table.items()
}

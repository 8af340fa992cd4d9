"""Issue 13 with the real, pinned kubectl: the kinds tutorials use (StatefulSet, Job,
CronJob, DaemonSet), the Events `kubectl describe` shows, and tutorial images (nginx,
httpd, redis, busybox) doing their thing from a manifest."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from sandbox_testing import wait_for

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

Kubectl = Callable[..., subprocess.CompletedProcess[str]]

STATEFULSET = """\
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{name: http, port: 8080}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: web
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
        - name: main
          image: python:3.11
          command: ["python3", "-m", "http.server", "8080"]
          env: [{{name: VERSION, value: "{version}"}}]
          readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
"""

TOOLBOX = """\
apiVersion: v1
kind: Pod
metadata: {name: toolbox}
spec:
  containers: [{name: main, image: busybox:1.36, command: ["sleep", "3600"]}]
"""


@pytest.fixture
def kubectl(sandbox: Any, namespace: str) -> Kubectl:
    if not sandbox.has_node:
        pytest.skip("needs the sandbox node")

    def run(*args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(sandbox.kubeconfig),
                               "-n", namespace, *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check:
            assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}"
        return proc

    return run


def apply(kubectl: Kubectl, manifest: str) -> None:
    kubectl("apply", "-f", "-", stdin=manifest)


def get(kubectl: Kubectl, *what: str) -> Any:
    return json.loads(kubectl("get", *what, "-o", "json").stdout)


def toolbox(kubectl: Kubectl) -> None:
    apply(kubectl, TOOLBOX)
    kubectl("wait", "--for=condition=Ready", "pod/toolbox", "--timeout=60s", timeout=70)


def test_a_statefulset_starts_its_pods_in_order_with_stable_names_and_dns(
        kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, STATEFULSET.format(replicas=2, version="v1"))
    out = kubectl("rollout", "status", "statefulset/web", "--timeout=90s", timeout=100).stdout
    assert "roll out complete: 2 new pods have been updated" in out
    pods = {p["metadata"]["name"]: p for p in get(kubectl, "pods", "-l", "app=web")["items"]}
    assert sorted(pods) == ["web-0", "web-1"]
    web0, web1 = pods["web-0"], pods["web-1"]
    # OrderedReady: web-1 was created only once web-0 was Ready
    ready0 = next(c["lastTransitionTime"] for c in web0["status"]["conditions"]
                  if c["type"] == "Ready")
    assert web1["metadata"]["creationTimestamp"] >= ready0
    for name, pod in pods.items():
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "web"
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == name
        assert pod["metadata"]["labels"]["controller-revision-hash"].startswith("web-")
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert kubectl("exec", "web-1", "--", "hostname").stdout.strip() == "web-1"
    # the headless Service names each pod, from another pod
    toolbox(kubectl)
    fqdn = f"web-0.web.{namespace}.svc.cluster.local"
    answer = wait_for(lambda: (r := kubectl("exec", "toolbox", "--", "nslookup", fqdn,
                                            check=False)).returncode == 0 and r.stdout,
                      30, f"{fqdn} resolves")
    assert web0["status"]["podIP"] in answer
    body = kubectl("exec", "toolbox", "--", "wget", "-qO-", f"http://{fqdn}:8080/").stdout
    assert "Directory listing" in body
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=web").stdout
    assert "create Pod web-0 in StatefulSet web successful" in events
    assert "create Pod web-1 in StatefulSet web successful" in events


def test_a_statefulset_scales_and_rolls_out_highest_ordinal_first(kubectl: Kubectl) -> None:
    apply(kubectl, STATEFULSET.format(replicas=2, version="v1"))
    kubectl("rollout", "status", "statefulset/web", "--timeout=90s", timeout=100)
    kubectl("scale", "statefulset/web", "--replicas=3")
    kubectl("rollout", "status", "statefulset/web", "--timeout=90s", timeout=100)
    assert get(kubectl, "statefulset", "web")["status"]["readyReplicas"] == 3
    first_rev = get(kubectl, "statefulset", "web")["status"]["currentRevision"]
    apply(kubectl, STATEFULSET.format(replicas=3, version="v2"))
    out = kubectl("rollout", "status", "statefulset/web", "--timeout=120s", timeout=130).stdout
    assert "roll out complete: 3 new pods have been updated" in out
    status = wait_for(lambda: (s := get(kubectl, "statefulset", "web")["status"])
                      .get("currentRevision") == s.get("updateRevision") and s, 30,
                      "currentRevision caught up")
    assert status["updateRevision"] != first_rev and status["updatedReplicas"] == 3
    for name in ("web-0", "web-1", "web-2"):
        assert kubectl("exec", name, "--", "printenv", "VERSION").stdout.strip() == "v2"
    deletes = [e for e in get(kubectl, "events")["items"]
               if e["reason"] == "SuccessfulDelete"]
    deletes.sort(key=lambda e: (e["firstTimestamp"], e["metadata"]["name"]))
    assert [e["message"].split()[2] for e in deletes] == ["web-2", "web-1", "web-0"]
    revisions = get(kubectl, "controllerrevisions")["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
    kubectl("scale", "statefulset/web", "--replicas=1")
    wait_for(lambda: [p["metadata"]["name"] for p in
                      get(kubectl, "pods", "-l", "app=web")["items"]] == ["web-0"],
             60, "scaled down to web-0")


def test_describe_pod_shows_the_kubelet_events_of_a_bad_image_and_a_crash_loop(
        kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: v1
kind: Pod
metadata: {name: nope}
spec:
  containers: [{name: main, image: example.com/no-such-image:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers: [{name: main, image: busybox, command: ["sh", "-c", "echo bye; exit 3"]}]
""")

    def described(pod: str, *needles: str) -> str | None:
        out = kubectl("describe", "pod", pod).stdout
        return out if all(n in out for n in needles) else None

    out = wait_for(lambda: described("nope", "Back-off pulling image", "(x2 over"), 60,
                   "image pull back-off events, aggregated")
    assert "Successfully assigned" in out
    assert 'Failed to pull image "example.com/no-such-image:1"' in out
    assert "Error: ErrImagePull" in out and "Error: ImagePullBackOff" in out
    out = wait_for(lambda: described("crash", "Back-off restarting failed container main"),
                   60, "crash-loop events")
    for needle in ("Created container: main", "Started container main", "kubelet"):
        assert needle in out
    listed = kubectl("events", "--for", "pod/crash").stdout
    assert "BackOff" in listed and "Started" in listed


def test_a_deployment_records_scaling_and_pod_creation_events(kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers: [{name: main, image: nginx}]
""")
    kubectl("rollout", "status", "deployment/hello", "--timeout=90s", timeout=100)
    out = kubectl("describe", "deployment", "hello").stdout
    assert "ScalingReplicaSet" in out and "Scaled up replica set hello-" in out
    rs = get(kubectl, "rs", "-l", "app=hello")["items"][0]["metadata"]["name"]
    out = kubectl("describe", "rs", rs).stdout
    assert out.count("SuccessfulCreate") == 2 and "Created pod: hello-" in out


def test_a_job_runs_to_completion_and_kubectl_wait_sees_it(kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: batch/v1
kind: Job
metadata: {name: count}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["sh", "-c", "echo counted"]}]
""")
    out = kubectl("wait", "--for=condition=complete", "job/count", "--timeout=90s",
                  timeout=100).stdout
    assert "job.batch/count condition met" in out
    job = get(kubectl, "job", "count")
    assert job["status"]["succeeded"] == 3 and job["status"].get("completionTime")
    row = kubectl("get", "job", "count").stdout.splitlines()[1].split()
    assert row[:3] == ["count", "Complete", "3/3"]
    assert "counted" in kubectl("logs", "job/count").stdout
    assert "Created pod: count-" in kubectl("describe", "job", "count").stdout


def test_a_failing_job_stops_at_its_backoff_limit(kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: batch/v1
kind: Job
metadata: {name: fail}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox, command: ["sh", "-c", "exit 1"]}]
""")
    kubectl("wait", "--for=condition=failed", "job/fail", "--timeout=90s", timeout=100)
    job = get(kubectl, "job", "fail")
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and job["status"]["failed"] == 2


def test_a_cronjob_every_minute_creates_a_job_that_completes(kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: main, image: busybox, command: ["sh", "-c", "echo tick"]}]
""")
    name = wait_for(lambda: [j["metadata"]["name"] for j in get(kubectl, "jobs")["items"]],
                    75, "the first scheduled Job")[0]
    assert name.startswith("tick-")
    kubectl("wait", "--for=condition=complete", f"job/{name}", "--timeout=60s", timeout=70)
    cj = wait_for(lambda: (c := get(kubectl, "cronjob", "tick"))["status"].get(
        "lastSuccessfulTime") and c, 30, "lastSuccessfulTime")
    assert cj["status"]["lastScheduleTime"]
    assert f"Created job {name}" in kubectl("describe", "cronjob", "tick").stdout


def test_a_daemonset_runs_one_pod_on_the_node_and_rolls_out(kubectl: Kubectl) -> None:
    manifest = """\
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      containers:
        - {{name: main, image: busybox, command: ["sleep", "3600"],
            env: [{{name: V, value: "{v}"}}]}}
"""
    apply(kubectl, manifest.format(v="1"))
    out = kubectl("rollout", "status", "daemonset/agent", "--timeout=60s", timeout=70).stdout
    assert 'daemon set "agent" successfully rolled out' in out
    pods = get(kubectl, "pods", "-l", "app=agent")["items"]
    assert len(pods) == 1 and pods[0]["spec"]["nodeName"] == "sandbox-node"
    apply(kubectl, manifest.format(v="2"))
    kubectl("rollout", "status", "daemonset/agent", "--timeout=60s", timeout=70)
    pod = wait_for(lambda: (ps := [p for p in get(kubectl, "pods", "-l", "app=agent")["items"]
                                   if not p["metadata"].get("deletionTimestamp")])
                   and len(ps) == 1 and ps[0], 60, "one new daemon pod")
    assert pod["metadata"]["name"] != pods[0]["metadata"]["name"]
    row = kubectl("get", "ds", "agent").stdout.splitlines()[1].split()
    assert row[:6] == ["agent", "1", "1", "1", "1", "1"]


def test_tutorial_images_serve_from_a_manifest(kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data: {index.html: "<h1>hello from a configmap</h1>"}
---
apiVersion: v1
kind: Pod
metadata: {name: nginx, labels: {app: nginx}}
spec:
  containers:
    - name: nginx
      image: nginx:1.27
      ports: [{containerPort: 80}]
      volumeMounts: [{name: site, mountPath: /usr/share/nginx/html}]
  volumes: [{name: site, configMap: {name: site}}]
---
apiVersion: v1
kind: Pod
metadata: {name: plain-nginx}
spec:
  containers: [{name: nginx, image: docker.io/library/nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: httpd}
spec:
  containers: [{name: httpd, image: httpd:2.4}]
---
apiVersion: v1
kind: Pod
metadata: {name: redis}
spec:
  containers: [{name: redis, image: redis:7}]
""")
    toolbox(kubectl)
    for pod in ("nginx", "plain-nginx", "httpd", "redis"):
        kubectl("wait", "--for=condition=Ready", f"pod/{pod}", "--timeout=60s", timeout=70)

    def fetch(pod: str) -> str:
        ip = get(kubectl, "pod", pod)["status"]["podIP"]
        return wait_for(lambda: (r := kubectl("exec", "toolbox", "--", "wget", "-qO-",
                                              f"http://{ip}/", check=False)).returncode == 0
                        and r.stdout, 30, f"{pod} answers")

    assert "hello from a configmap" in fetch("nginx")
    assert "Welcome to nginx!" in fetch("plain-nginx")
    assert "It works!" in fetch("httpd")
    assert kubectl("exec", "redis", "--", "redis-cli", "SET", "greeting", "hi"
                   ).stdout.strip() == "OK"
    assert kubectl("exec", "redis", "--", "redis-cli", "GET", "greeting").stdout.strip() == "hi"
    ip = get(kubectl, "pod", "redis")["status"]["podIP"]
    pong = kubectl("exec", "toolbox", "--", "sh", "-c", f"printf 'PING\\r\\n' | nc -w1 {ip} 6379")
    assert "+PONG" in pong.stdout
    assert "GET / HTTP/1.1" in kubectl("logs", "nginx").stdout


def test_unknown_kinds_answer_like_a_real_server(kubectl: Kubectl, namespace: str) -> None:
    out = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/replicationcontrollers",
                  check=False)
    assert out.returncode != 0
    assert "the server could not find the requested resource" in out.stderr
    resources = kubectl("api-resources", "--api-group=batch").stdout
    assert "cronjobs" in resources and "jobs" in resources
    assert "statefulsets" in kubectl("api-resources", "--api-group=apps").stdout


def test_kubectl_events_lists_a_pods_life_down_to_killing(kubectl: Kubectl) -> None:
    toolbox(kubectl)
    out = kubectl("events").stdout
    assert "Scheduled" in out and "Started" in out and "Pod/toolbox" in out
    kubectl("delete", "pod", "toolbox", "--wait=true", timeout=60)
    out = kubectl("events", "--for", "pod/toolbox").stdout
    assert "Killing" in out and "Stopping container main" in out


def test_a_failing_readiness_probe_shows_unhealthy_events(kubectl: Kubectl) -> None:
    apply(kubectl, """\
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  containers:
    - name: main
      image: busybox
      command: ["sleep", "3600"]
      readinessProbe: {exec: {command: ["sh", "-c", "echo not yet; exit 1"]},
                       periodSeconds: 1}
""")
    out = wait_for(lambda: "(x2 over" in (o := kubectl("describe", "pod", "sick").stdout)
                   and o, 60, "repeated Unhealthy events")
    assert "Unhealthy" in out and "Readiness probe failed:" in out


def test_the_statefulset_tutorial_keeps_each_pods_data_across_restarts(
        kubectl: Kubectl, namespace: str) -> None:
    """kubernetes.io's "StatefulSet Basics": nginx-slim, a headless Service and a
    volumeClaimTemplate whose claims outlive the pods."""
    apply(kubectl, """\
apiVersion: v1
kind: Service
metadata: {name: nginx, labels: {app: nginx}}
spec:
  ports: [{port: 80, name: web}]
  clusterIP: None
  selector: {app: nginx}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
        - name: nginx
          image: registry.k8s.io/nginx-slim:0.24
          ports: [{containerPort: 80, name: web}]
          volumeMounts: [{name: www, mountPath: /usr/share/nginx/html}]
  volumeClaimTemplates:
    - metadata: {name: www}
      spec:
        accessModes: ["ReadWriteOnce"]
        resources: {requests: {storage: 1Gi}}
""")
    kubectl("rollout", "status", "statefulset/web", "--timeout=90s", timeout=100)
    claims = get(kubectl, "pvc")["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["www-web-0", "www-web-1"]
    assert {c["status"]["phase"] for c in claims} == {"Bound"}
    assert {c["status"]["capacity"]["storage"] for c in claims} == {"1Gi"}
    for i in (0, 1):
        kubectl("exec", f"web-{i}", "--", "sh", "-c",
                "echo $(hostname) > /usr/share/nginx/html/index.html")
    kubectl("delete", "pod", "web-0", "web-1", "--wait=true", timeout=60)
    kubectl("rollout", "status", "statefulset/web", "--timeout=90s", timeout=100)
    toolbox(kubectl)
    for i in (0, 1):
        url = f"http://web-{i}.nginx.{namespace}.svc.cluster.local/"
        page = wait_for(lambda url=url: (r := kubectl("exec", "toolbox", "--", "wget", "-qO-",
                                                      url, check=False)).returncode == 0
                        and r.stdout, 30, f"{url} answers")
        assert page.strip() == f"web-{i}"

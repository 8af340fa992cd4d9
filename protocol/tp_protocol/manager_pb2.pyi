import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Mechanism(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MECHANISM_UNSPECIFIED: _ClassVar[Mechanism]
    MECHANISM_TCP: _ClassVar[Mechanism]
    MECHANISM_HTTP: _ClassVar[Mechanism]

class InterceptState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTERCEPT_STATE_UNSPECIFIED: _ClassVar[InterceptState]
    INTERCEPT_STATE_WAITING: _ClassVar[InterceptState]
    INTERCEPT_STATE_ACTIVE: _ClassVar[InterceptState]
    INTERCEPT_STATE_NO_AGENT: _ClassVar[InterceptState]
    INTERCEPT_STATE_CONFLICT: _ClassVar[InterceptState]
    INTERCEPT_STATE_AGENT_ERROR: _ClassVar[InterceptState]
    INTERCEPT_STATE_REMOVED: _ClassVar[InterceptState]

class WorkloadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKLOAD_STATE_UNSPECIFIED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_INTERCEPTABLE: _ClassVar[WorkloadState]
    WORKLOAD_STATE_AGENT_INSTALLED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_INTERCEPTED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_NOT_INTERCEPTABLE: _ClassVar[WorkloadState]

class RoutedTo(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUTED_TO_UNSPECIFIED: _ClassVar[RoutedTo]
    ROUTED_TO_LOCAL: _ClassVar[RoutedTo]
    ROUTED_TO_CLUSTER: _ClassVar[RoutedTo]

class TrafficMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAFFIC_MODE_UNSPECIFIED: _ClassVar[TrafficMode]
    TRAFFIC_MODE_INTERCEPT: _ClassVar[TrafficMode]
    TRAFFIC_MODE_MIRROR: _ClassVar[TrafficMode]
    TRAFFIC_MODE_HOLD: _ClassVar[TrafficMode]
MECHANISM_UNSPECIFIED: Mechanism
MECHANISM_TCP: Mechanism
MECHANISM_HTTP: Mechanism
INTERCEPT_STATE_UNSPECIFIED: InterceptState
INTERCEPT_STATE_WAITING: InterceptState
INTERCEPT_STATE_ACTIVE: InterceptState
INTERCEPT_STATE_NO_AGENT: InterceptState
INTERCEPT_STATE_CONFLICT: InterceptState
INTERCEPT_STATE_AGENT_ERROR: InterceptState
INTERCEPT_STATE_REMOVED: InterceptState
WORKLOAD_STATE_UNSPECIFIED: WorkloadState
WORKLOAD_STATE_INTERCEPTABLE: WorkloadState
WORKLOAD_STATE_AGENT_INSTALLED: WorkloadState
WORKLOAD_STATE_INTERCEPTED: WorkloadState
WORKLOAD_STATE_NOT_INTERCEPTABLE: WorkloadState
ROUTED_TO_UNSPECIFIED: RoutedTo
ROUTED_TO_LOCAL: RoutedTo
ROUTED_TO_CLUSTER: RoutedTo
TRAFFIC_MODE_UNSPECIFIED: TrafficMode
TRAFFIC_MODE_INTERCEPT: TrafficMode
TRAFFIC_MODE_MIRROR: TrafficMode
TRAFFIC_MODE_HOLD: TrafficMode

class GatherLogsRequest(_message.Message):
    __slots__ = ("session", "max_bytes")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    max_bytes: int
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class ComponentLog(_message.Message):
    __slots__ = ("component", "namespace", "pod", "container", "workload", "source", "text", "size", "truncated", "error")
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    component: str
    namespace: str
    pod: str
    container: str
    workload: str
    source: str
    text: bytes
    size: int
    truncated: bool
    error: str
    def __init__(self, component: _Optional[str] = ..., namespace: _Optional[str] = ..., pod: _Optional[str] = ..., container: _Optional[str] = ..., workload: _Optional[str] = ..., source: _Optional[str] = ..., text: _Optional[bytes] = ..., size: _Optional[int] = ..., truncated: _Optional[bool] = ..., error: _Optional[str] = ...) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class ClientInfo(_message.Message):
    __slots__ = ("name", "namespace", "install_id", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INSTALL_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    install_id: str
    version: str
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., install_id: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class AgentPort(_message.Message):
    __slots__ = ("name", "port", "app_port", "protocol")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    APP_PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    name: str
    port: int
    app_port: int
    protocol: str
    def __init__(self, name: _Optional[str] = ..., port: _Optional[int] = ..., app_port: _Optional[int] = ..., protocol: _Optional[str] = ...) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("name", "namespace", "kind", "pod_name", "pod_ip", "ports", "version", "link_port")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    POD_IP_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LINK_PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    kind: str
    pod_name: str
    pod_ip: str
    ports: _containers.RepeatedCompositeFieldContainer[AgentPort]
    version: str
    link_port: int
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., kind: _Optional[str] = ..., pod_name: _Optional[str] = ..., pod_ip: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[AgentPort, _Mapping]]] = ..., version: _Optional[str] = ..., link_port: _Optional[int] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "ttl_seconds", "dial_secret", "raw_dial_port")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DIAL_SECRET_FIELD_NUMBER: _ClassVar[int]
    RAW_DIAL_PORT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    ttl_seconds: float
    dial_secret: bytes
    raw_dial_port: int
    def __init__(self, session_id: _Optional[str] = ..., ttl_seconds: _Optional[float] = ..., dial_secret: _Optional[bytes] = ..., raw_dial_port: _Optional[int] = ...) -> None: ...

class RemainRequest(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ...) -> None: ...

class ClusterInfo(_message.Message):
    __slots__ = ("pod_cidrs", "service_cidr", "cluster_domain", "dns_ip", "kube_api_ip", "manager_namespace", "manager_version")
    POD_CIDRS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CIDR_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    DNS_IP_FIELD_NUMBER: _ClassVar[int]
    KUBE_API_IP_FIELD_NUMBER: _ClassVar[int]
    MANAGER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    MANAGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    pod_cidrs: _containers.RepeatedScalarFieldContainer[str]
    service_cidr: str
    cluster_domain: str
    dns_ip: str
    kube_api_ip: str
    manager_namespace: str
    manager_version: str
    def __init__(self, pod_cidrs: _Optional[_Iterable[str]] = ..., service_cidr: _Optional[str] = ..., cluster_domain: _Optional[str] = ..., dns_ip: _Optional[str] = ..., kube_api_ip: _Optional[str] = ..., manager_namespace: _Optional[str] = ..., manager_version: _Optional[str] = ...) -> None: ...

class DNSRequest(_message.Message):
    __slots__ = ("session", "name", "qtype")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    QTYPE_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    name: str
    qtype: int
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., name: _Optional[str] = ..., qtype: _Optional[int] = ...) -> None: ...

class DNSRecord(_message.Message):
    __slots__ = ("name", "type", "ttl", "ip", "target", "port", "priority", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: int
    ttl: int
    ip: str
    target: str
    port: int
    priority: int
    weight: int
    def __init__(self, name: _Optional[str] = ..., type: _Optional[int] = ..., ttl: _Optional[int] = ..., ip: _Optional[str] = ..., target: _Optional[str] = ..., port: _Optional[int] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ...) -> None: ...

class DNSResponse(_message.Message):
    __slots__ = ("rcode", "records", "cluster_name")
    RCODE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    rcode: int
    records: _containers.RepeatedCompositeFieldContainer[DNSRecord]
    cluster_name: bool
    def __init__(self, rcode: _Optional[int] = ..., records: _Optional[_Iterable[_Union[DNSRecord, _Mapping]]] = ..., cluster_name: _Optional[bool] = ...) -> None: ...

class Dial(_message.Message):
    __slots__ = ("protocol", "ip", "port")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    ip: str
    port: int
    def __init__(self, protocol: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class ToClient(_message.Message):
    __slots__ = ("intercept_id", "source_ip", "source_port", "service_port")
    INTERCEPT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    intercept_id: str
    source_ip: str
    source_port: int
    service_port: int
    def __init__(self, intercept_id: _Optional[str] = ..., source_ip: _Optional[str] = ..., source_port: _Optional[int] = ..., service_port: _Optional[int] = ...) -> None: ...

class TunnelOpen(_message.Message):
    __slots__ = ("session", "dial", "to_client", "accept_dial_id", "refused")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    DIAL_FIELD_NUMBER: _ClassVar[int]
    TO_CLIENT_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_DIAL_ID_FIELD_NUMBER: _ClassVar[int]
    REFUSED_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    dial: Dial
    to_client: ToClient
    accept_dial_id: str
    refused: TunnelError
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., dial: _Optional[_Union[Dial, _Mapping]] = ..., to_client: _Optional[_Union[ToClient, _Mapping]] = ..., accept_dial_id: _Optional[str] = ..., refused: _Optional[_Union[TunnelError, _Mapping]] = ...) -> None: ...

class TunnelOpened(_message.Message):
    __slots__ = ("local_address", "remote_address")
    LOCAL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    local_address: str
    remote_address: str
    def __init__(self, local_address: _Optional[str] = ..., remote_address: _Optional[str] = ...) -> None: ...

class CloseWrite(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TunnelError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class TunnelMessage(_message.Message):
    __slots__ = ("open", "opened", "data", "close_write", "error")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CLOSE_WRITE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    open: TunnelOpen
    opened: TunnelOpened
    data: bytes
    close_write: CloseWrite
    error: TunnelError
    def __init__(self, open: _Optional[_Union[TunnelOpen, _Mapping]] = ..., opened: _Optional[_Union[TunnelOpened, _Mapping]] = ..., data: _Optional[bytes] = ..., close_write: _Optional[_Union[CloseWrite, _Mapping]] = ..., error: _Optional[_Union[TunnelError, _Mapping]] = ...) -> None: ...

class DialRequest(_message.Message):
    __slots__ = ("dial_id", "intercept_id", "target_host", "target_port", "source_ip", "source_port")
    DIAL_ID_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_HOST_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IP_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PORT_FIELD_NUMBER: _ClassVar[int]
    dial_id: str
    intercept_id: str
    target_host: str
    target_port: int
    source_ip: str
    source_port: int
    def __init__(self, dial_id: _Optional[str] = ..., intercept_id: _Optional[str] = ..., target_host: _Optional[str] = ..., target_port: _Optional[int] = ..., source_ip: _Optional[str] = ..., source_port: _Optional[int] = ...) -> None: ...

class HeaderMatch(_message.Message):
    __slots__ = ("name", "regex")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    regex: str
    def __init__(self, name: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class InterceptSpec(_message.Message):
    __slots__ = ("name", "client", "workload", "namespace", "workload_kind", "service_name", "service_port", "target_host", "target_port", "mechanism", "header_matches", "mount_point", "owner", "replace_app", "mirror", "path_equal", "path_prefix", "path_regex", "methods")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KIND_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    TARGET_HOST_FIELD_NUMBER: _ClassVar[int]
    TARGET_PORT_FIELD_NUMBER: _ClassVar[int]
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    HEADER_MATCHES_FIELD_NUMBER: _ClassVar[int]
    MOUNT_POINT_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    REPLACE_APP_FIELD_NUMBER: _ClassVar[int]
    MIRROR_FIELD_NUMBER: _ClassVar[int]
    PATH_EQUAL_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PATH_REGEX_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    name: str
    client: str
    workload: str
    namespace: str
    workload_kind: str
    service_name: str
    service_port: str
    target_host: str
    target_port: int
    mechanism: Mechanism
    header_matches: _containers.RepeatedCompositeFieldContainer[HeaderMatch]
    mount_point: str
    owner: str
    replace_app: bool
    mirror: bool
    path_equal: str
    path_prefix: str
    path_regex: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., client: _Optional[str] = ..., workload: _Optional[str] = ..., namespace: _Optional[str] = ..., workload_kind: _Optional[str] = ..., service_name: _Optional[str] = ..., service_port: _Optional[str] = ..., target_host: _Optional[str] = ..., target_port: _Optional[int] = ..., mechanism: _Optional[_Union[Mechanism, str]] = ..., header_matches: _Optional[_Iterable[_Union[HeaderMatch, _Mapping]]] = ..., mount_point: _Optional[str] = ..., owner: _Optional[str] = ..., replace_app: _Optional[bool] = ..., mirror: _Optional[bool] = ..., path_equal: _Optional[str] = ..., path_prefix: _Optional[str] = ..., path_regex: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ...) -> None: ...

class PreparedIntercept(_message.Message):
    __slots__ = ("error", "workload_kind", "service_name", "service_port_name", "service_port", "container_port", "agent_installed", "agent_image")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KIND_FIELD_NUMBER: _ClassVar[int]
    SERVICE_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PORT_NAME_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    AGENT_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    AGENT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    error: str
    workload_kind: str
    service_name: str
    service_port_name: str
    service_port: int
    container_port: int
    agent_installed: bool
    agent_image: str
    def __init__(self, error: _Optional[str] = ..., workload_kind: _Optional[str] = ..., service_name: _Optional[str] = ..., service_port_name: _Optional[str] = ..., service_port: _Optional[int] = ..., container_port: _Optional[int] = ..., agent_installed: _Optional[bool] = ..., agent_image: _Optional[str] = ...) -> None: ...

class CreateInterceptRequest(_message.Message):
    __slots__ = ("session", "spec")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    spec: InterceptSpec
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., spec: _Optional[_Union[InterceptSpec, _Mapping]] = ...) -> None: ...

class Mount(_message.Message):
    __slots__ = ("name", "mount_path", "read_only")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MOUNT_PATH_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    mount_path: str
    read_only: bool
    def __init__(self, name: _Optional[str] = ..., mount_path: _Optional[str] = ..., read_only: _Optional[bool] = ...) -> None: ...

class InterceptInfo(_message.Message):
    __slots__ = ("spec", "id", "state", "message", "client_session", "agent_pod", "pod_ip", "environment", "mounts", "created", "volumes_port", "volumes_token", "sftp_port", "mirror_copied", "mirror_dropped", "link_key", "link_pods", "link_connections", "link_state", "relay_connections")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SESSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_POD_FIELD_NUMBER: _ClassVar[int]
    POD_IP_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_PORT_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SFTP_PORT_FIELD_NUMBER: _ClassVar[int]
    MIRROR_COPIED_FIELD_NUMBER: _ClassVar[int]
    MIRROR_DROPPED_FIELD_NUMBER: _ClassVar[int]
    LINK_KEY_FIELD_NUMBER: _ClassVar[int]
    LINK_PODS_FIELD_NUMBER: _ClassVar[int]
    LINK_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    LINK_STATE_FIELD_NUMBER: _ClassVar[int]
    RELAY_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    spec: InterceptSpec
    id: str
    state: InterceptState
    message: str
    client_session: str
    agent_pod: str
    pod_ip: str
    environment: _containers.ScalarMap[str, str]
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    created: _timestamp_pb2.Timestamp
    volumes_port: int
    volumes_token: str
    sftp_port: int
    mirror_copied: int
    mirror_dropped: int
    link_key: str
    link_pods: _containers.RepeatedCompositeFieldContainer[AgentLinkPod]
    link_connections: int
    link_state: str
    relay_connections: int
    def __init__(self, spec: _Optional[_Union[InterceptSpec, _Mapping]] = ..., id: _Optional[str] = ..., state: _Optional[_Union[InterceptState, str]] = ..., message: _Optional[str] = ..., client_session: _Optional[str] = ..., agent_pod: _Optional[str] = ..., pod_ip: _Optional[str] = ..., environment: _Optional[_Mapping[str, str]] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., volumes_port: _Optional[int] = ..., volumes_token: _Optional[str] = ..., sftp_port: _Optional[int] = ..., mirror_copied: _Optional[int] = ..., mirror_dropped: _Optional[int] = ..., link_key: _Optional[str] = ..., link_pods: _Optional[_Iterable[_Union[AgentLinkPod, _Mapping]]] = ..., link_connections: _Optional[int] = ..., link_state: _Optional[str] = ..., relay_connections: _Optional[int] = ...) -> None: ...

class InterceptSnapshot(_message.Message):
    __slots__ = ("intercepts",)
    INTERCEPTS_FIELD_NUMBER: _ClassVar[int]
    intercepts: _containers.RepeatedCompositeFieldContainer[InterceptInfo]
    def __init__(self, intercepts: _Optional[_Iterable[_Union[InterceptInfo, _Mapping]]] = ...) -> None: ...

class ListInterceptsRequest(_message.Message):
    __slots__ = ("session", "namespace")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    namespace: str
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., namespace: _Optional[str] = ...) -> None: ...

class RemoveInterceptRequest(_message.Message):
    __slots__ = ("session", "name")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    name: str
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class UninstallAgentsRequest(_message.Message):
    __slots__ = ("session", "namespace", "workloads", "all", "force")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    namespace: str
    workloads: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    force: bool
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., namespace: _Optional[str] = ..., workloads: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., force: _Optional[bool] = ...) -> None: ...

class UninstallAgentsResult(_message.Message):
    __slots__ = ("restored", "error", "ended")
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    restored: _containers.RepeatedScalarFieldContainer[str]
    error: str
    ended: _containers.RepeatedCompositeFieldContainer[InterceptSpec]
    def __init__(self, restored: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., ended: _Optional[_Iterable[_Union[InterceptSpec, _Mapping]]] = ...) -> None: ...

class ReviewInterceptRequest(_message.Message):
    __slots__ = ("session", "intercept_id", "state", "message", "environment", "mounts", "pod_ip", "volumes_port", "volumes_token", "sftp_port")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    POD_IP_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_PORT_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SFTP_PORT_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    intercept_id: str
    state: InterceptState
    message: str
    environment: _containers.ScalarMap[str, str]
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    pod_ip: str
    volumes_port: int
    volumes_token: str
    sftp_port: int
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., intercept_id: _Optional[str] = ..., state: _Optional[_Union[InterceptState, str]] = ..., message: _Optional[str] = ..., environment: _Optional[_Mapping[str, str]] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ..., pod_ip: _Optional[str] = ..., volumes_port: _Optional[int] = ..., volumes_token: _Optional[str] = ..., sftp_port: _Optional[int] = ...) -> None: ...

class WorkloadInfo(_message.Message):
    __slots__ = ("name", "namespace", "kind", "state", "reason", "intercepts", "agent_installed", "agent_versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INTERCEPTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    kind: str
    state: WorkloadState
    reason: str
    intercepts: _containers.RepeatedCompositeFieldContainer[InterceptInfo]
    agent_installed: bool
    agent_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[WorkloadState, str]] = ..., reason: _Optional[str] = ..., intercepts: _Optional[_Iterable[_Union[InterceptInfo, _Mapping]]] = ..., agent_installed: _Optional[bool] = ..., agent_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class ListWorkloadsRequest(_message.Message):
    __slots__ = ("session", "namespace")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    namespace: str
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., namespace: _Optional[str] = ...) -> None: ...

class WorkloadList(_message.Message):
    __slots__ = ("workloads",)
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    workloads: _containers.RepeatedCompositeFieldContainer[WorkloadInfo]
    def __init__(self, workloads: _Optional[_Iterable[_Union[WorkloadInfo, _Mapping]]] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class TrafficRecord(_message.Message):
    __slots__ = ("id", "time", "intercept_id", "intercept_name", "client_session", "workload", "namespace", "pod", "port", "source", "method", "path", "http_version", "request_headers", "status", "reason", "response_headers", "duration_ms", "time_to_first_byte_ms", "request_size", "response_size", "routed_to", "request_body_prefix", "response_body_prefix", "request_body_truncated", "response_body_truncated", "error", "mode", "developer", "local_answer", "service_port_name", "hold_decision")
    ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_ID_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SESSION_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HTTP_VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_BYTE_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_SIZE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROUTED_TO_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    REQUEST_BODY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DEVELOPER_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ANSWER_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PORT_NAME_FIELD_NUMBER: _ClassVar[int]
    HOLD_DECISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    time: _timestamp_pb2.Timestamp
    intercept_id: str
    intercept_name: str
    client_session: str
    workload: str
    namespace: str
    pod: str
    port: int
    source: str
    method: str
    path: str
    http_version: str
    request_headers: _containers.RepeatedCompositeFieldContainer[Header]
    status: int
    reason: str
    response_headers: _containers.RepeatedCompositeFieldContainer[Header]
    duration_ms: float
    time_to_first_byte_ms: float
    request_size: int
    response_size: int
    routed_to: RoutedTo
    request_body_prefix: bytes
    response_body_prefix: bytes
    request_body_truncated: bool
    response_body_truncated: bool
    error: str
    mode: TrafficMode
    developer: str
    local_answer: MirrorAnswer
    service_port_name: str
    hold_decision: str
    def __init__(self, id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., intercept_id: _Optional[str] = ..., intercept_name: _Optional[str] = ..., client_session: _Optional[str] = ..., workload: _Optional[str] = ..., namespace: _Optional[str] = ..., pod: _Optional[str] = ..., port: _Optional[int] = ..., source: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., http_version: _Optional[str] = ..., request_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., status: _Optional[int] = ..., reason: _Optional[str] = ..., response_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., duration_ms: _Optional[float] = ..., time_to_first_byte_ms: _Optional[float] = ..., request_size: _Optional[int] = ..., response_size: _Optional[int] = ..., routed_to: _Optional[_Union[RoutedTo, str]] = ..., request_body_prefix: _Optional[bytes] = ..., response_body_prefix: _Optional[bytes] = ..., request_body_truncated: _Optional[bool] = ..., response_body_truncated: _Optional[bool] = ..., error: _Optional[str] = ..., mode: _Optional[_Union[TrafficMode, str]] = ..., developer: _Optional[str] = ..., local_answer: _Optional[_Union[MirrorAnswer, _Mapping]] = ..., service_port_name: _Optional[str] = ..., hold_decision: _Optional[str] = ...) -> None: ...

class TrafficReport(_message.Message):
    __slots__ = ("session", "record", "mirror_counters", "records")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    MIRROR_COUNTERS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    record: TrafficRecord
    mirror_counters: _containers.RepeatedCompositeFieldContainer[MirrorCounters]
    records: _containers.RepeatedCompositeFieldContainer[TrafficRecord]
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., record: _Optional[_Union[TrafficRecord, _Mapping]] = ..., mirror_counters: _Optional[_Iterable[_Union[MirrorCounters, _Mapping]]] = ..., records: _Optional[_Iterable[_Union[TrafficRecord, _Mapping]]] = ...) -> None: ...

class WatchTrafficRequest(_message.Message):
    __slots__ = ("session", "intercept_names", "include_unmatched")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_NAMES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNMATCHED_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    intercept_names: _containers.RepeatedScalarFieldContainer[str]
    include_unmatched: bool
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., intercept_names: _Optional[_Iterable[str]] = ..., include_unmatched: _Optional[bool] = ...) -> None: ...

class MirrorAnswer(_message.Message):
    __slots__ = ("status", "reason", "response_headers", "response_body_prefix", "response_body_truncated", "response_size", "duration_ms", "error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_PREFIX_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_BODY_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    status: int
    reason: str
    response_headers: _containers.RepeatedCompositeFieldContainer[Header]
    response_body_prefix: bytes
    response_body_truncated: bool
    response_size: int
    duration_ms: float
    error: str
    def __init__(self, status: _Optional[int] = ..., reason: _Optional[str] = ..., response_headers: _Optional[_Iterable[_Union[Header, _Mapping]]] = ..., response_body_prefix: _Optional[bytes] = ..., response_body_truncated: _Optional[bool] = ..., response_size: _Optional[int] = ..., duration_ms: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class MirrorCounters(_message.Message):
    __slots__ = ("intercept_id", "copied", "dropped")
    INTERCEPT_ID_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    intercept_id: str
    copied: int
    dropped: int
    def __init__(self, intercept_id: _Optional[str] = ..., copied: _Optional[int] = ..., dropped: _Optional[int] = ...) -> None: ...

class RelayFrame(_message.Message):
    __slots__ = ("conn", "hello", "open", "dial", "opened", "close_write", "error", "link_hello", "data")
    CONN_FIELD_NUMBER: _ClassVar[int]
    HELLO_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    DIAL_FIELD_NUMBER: _ClassVar[int]
    OPENED_FIELD_NUMBER: _ClassVar[int]
    CLOSE_WRITE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LINK_HELLO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    conn: int
    hello: SessionInfo
    open: ToClient
    dial: DialRequest
    opened: TunnelOpened
    close_write: CloseWrite
    error: TunnelError
    link_hello: LinkHello
    data: bytes
    def __init__(self, conn: _Optional[int] = ..., hello: _Optional[_Union[SessionInfo, _Mapping]] = ..., open: _Optional[_Union[ToClient, _Mapping]] = ..., dial: _Optional[_Union[DialRequest, _Mapping]] = ..., opened: _Optional[_Union[TunnelOpened, _Mapping]] = ..., close_write: _Optional[_Union[CloseWrite, _Mapping]] = ..., error: _Optional[_Union[TunnelError, _Mapping]] = ..., link_hello: _Optional[_Union[LinkHello, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class RelayBatch(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[RelayFrame]
    def __init__(self, frames: _Optional[_Iterable[_Union[RelayFrame, _Mapping]]] = ...) -> None: ...

class TrafficBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[TrafficRecord]
    def __init__(self, records: _Optional[_Iterable[_Union[TrafficRecord, _Mapping]]] = ...) -> None: ...

class RawDialHeader(_message.Message):
    __slots__ = ("session_id", "dial_secret", "ip", "port")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DIAL_SECRET_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    dial_secret: bytes
    ip: str
    port: int
    def __init__(self, session_id: _Optional[str] = ..., dial_secret: _Optional[bytes] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class RawDialAnswer(_message.Message):
    __slots__ = ("ok", "code", "message", "remote_address")
    OK_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    code: str
    message: str
    remote_address: str
    def __init__(self, ok: _Optional[bool] = ..., code: _Optional[str] = ..., message: _Optional[str] = ..., remote_address: _Optional[str] = ...) -> None: ...

class AgentLinkPod(_message.Message):
    __slots__ = ("namespace", "pod", "port")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    port: int
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class LinkKey(_message.Message):
    __slots__ = ("intercept_id", "key")
    INTERCEPT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    intercept_id: str
    key: str
    def __init__(self, intercept_id: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class LinkHello(_message.Message):
    __slots__ = ("keys", "note")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[LinkKey]
    note: str
    def __init__(self, keys: _Optional[_Iterable[_Union[LinkKey, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class ResolveDialRequest(_message.Message):
    __slots__ = ("session", "dial")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    DIAL_FIELD_NUMBER: _ClassVar[int]
    session: SessionInfo
    dial: Dial
    def __init__(self, session: _Optional[_Union[SessionInfo, _Mapping]] = ..., dial: _Optional[_Union[Dial, _Mapping]] = ...) -> None: ...

class DialRoute(_message.Message):
    __slots__ = ("namespace", "pod", "port", "none")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    NONE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    pod: str
    port: int
    none: str
    def __init__(self, namespace: _Optional[str] = ..., pod: _Optional[str] = ..., port: _Optional[int] = ..., none: _Optional[str] = ...) -> None: ...

from google.protobuf import empty_pb2 as _empty_pb2
from tp_protocol import manager_pb2 as _manager_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_USAGE: _ClassVar[ErrorCode]
    ERROR_CODE_KUBECONFIG: _ClassVar[ErrorCode]
    ERROR_CODE_CLUSTER_UNREACHABLE: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION: _ClassVar[ErrorCode]
    ERROR_CODE_INSTALL: _ClassVar[ErrorCode]
    ERROR_CODE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_VERSION_SKEW: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_CONNECTED: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_CONFLICT: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_TUN: _ClassVar[Mode]
    MODE_PROXY: _ClassVar[Mode]

class WorkloadState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKLOAD_STATE_UNSPECIFIED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_READY_NOT_INSTALLED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_READY_INSTALLED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_INTERCEPTED: _ClassVar[WorkloadState]
    WORKLOAD_STATE_NOT_INTERCEPTABLE: _ClassVar[WorkloadState]

class ReplayTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLAY_TARGET_UNSPECIFIED: _ClassVar[ReplayTarget]
    REPLAY_TARGET_LOCAL: _ClassVar[ReplayTarget]
    REPLAY_TARGET_CLUSTER: _ClassVar[ReplayTarget]

class HeldAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HELD_ACTION_UNSPECIFIED: _ClassVar[HeldAction]
    HELD_ACTION_FORWARD_LOCAL: _ClassVar[HeldAction]
    HELD_ACTION_FORWARD_CLUSTER: _ClassVar[HeldAction]
    HELD_ACTION_RESPOND: _ClassVar[HeldAction]
    HELD_ACTION_DROP: _ClassVar[HeldAction]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_USAGE: ErrorCode
ERROR_CODE_KUBECONFIG: ErrorCode
ERROR_CODE_CLUSTER_UNREACHABLE: ErrorCode
ERROR_CODE_PERMISSION: ErrorCode
ERROR_CODE_INSTALL: ErrorCode
ERROR_CODE_TIMEOUT: ErrorCode
ERROR_CODE_VERSION_SKEW: ErrorCode
ERROR_CODE_NOT_CONNECTED: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_CONFLICT: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
MODE_UNSPECIFIED: Mode
MODE_TUN: Mode
MODE_PROXY: Mode
WORKLOAD_STATE_UNSPECIFIED: WorkloadState
WORKLOAD_STATE_READY_NOT_INSTALLED: WorkloadState
WORKLOAD_STATE_READY_INSTALLED: WorkloadState
WORKLOAD_STATE_INTERCEPTED: WorkloadState
WORKLOAD_STATE_NOT_INTERCEPTABLE: WorkloadState
REPLAY_TARGET_UNSPECIFIED: ReplayTarget
REPLAY_TARGET_LOCAL: ReplayTarget
REPLAY_TARGET_CLUSTER: ReplayTarget
HELD_ACTION_UNSPECIFIED: HeldAction
HELD_ACTION_FORWARD_LOCAL: HeldAction
HELD_ACTION_FORWARD_CLUSTER: HeldAction
HELD_ACTION_RESPOND: HeldAction
HELD_ACTION_DROP: HeldAction

class Error(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ...) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("name", "version", "pid", "log_file")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    LOG_FILE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    pid: int
    log_file: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., pid: _Optional[int] = ..., log_file: _Optional[str] = ...) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("kubeconfig", "context", "namespace", "manager_namespace", "kube_flags", "proxy_mode", "manager_image", "agent_image", "image_registry", "image_pull_secrets", "manager_address", "manager_service_type")
    class KubeFlagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KUBECONFIG_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    MANAGER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KUBE_FLAGS_FIELD_NUMBER: _ClassVar[int]
    PROXY_MODE_FIELD_NUMBER: _ClassVar[int]
    MANAGER_IMAGE_FIELD_NUMBER: _ClassVar[int]
    AGENT_IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_REGISTRY_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PULL_SECRETS_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MANAGER_SERVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    kubeconfig: str
    context: str
    namespace: str
    manager_namespace: str
    kube_flags: _containers.ScalarMap[str, str]
    proxy_mode: bool
    manager_image: str
    agent_image: str
    image_registry: str
    image_pull_secrets: _containers.RepeatedScalarFieldContainer[str]
    manager_address: str
    manager_service_type: str
    def __init__(self, kubeconfig: _Optional[str] = ..., context: _Optional[str] = ..., namespace: _Optional[str] = ..., manager_namespace: _Optional[str] = ..., kube_flags: _Optional[_Mapping[str, str]] = ..., proxy_mode: _Optional[bool] = ..., manager_image: _Optional[str] = ..., agent_image: _Optional[str] = ..., image_registry: _Optional[str] = ..., image_pull_secrets: _Optional[_Iterable[str]] = ..., manager_address: _Optional[str] = ..., manager_service_type: _Optional[str] = ...) -> None: ...

class ConnectInfo(_message.Message):
    __slots__ = ("error", "already_connected", "cluster_context", "cluster_server", "namespace", "manager_namespace", "session_id", "manager_version", "daemon_version", "version_warning", "manager_installed", "mode", "socks_address", "cluster_info", "manager_path", "manager_address", "manager_path_note")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ALREADY_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_SERVER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    MANAGER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MANAGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    DAEMON_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_WARNING_FIELD_NUMBER: _ClassVar[int]
    MANAGER_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SOCKS_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_INFO_FIELD_NUMBER: _ClassVar[int]
    MANAGER_PATH_FIELD_NUMBER: _ClassVar[int]
    MANAGER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MANAGER_PATH_NOTE_FIELD_NUMBER: _ClassVar[int]
    error: Error
    already_connected: bool
    cluster_context: str
    cluster_server: str
    namespace: str
    manager_namespace: str
    session_id: str
    manager_version: str
    daemon_version: str
    version_warning: str
    manager_installed: bool
    mode: Mode
    socks_address: str
    cluster_info: _manager_pb2.ClusterInfo
    manager_path: str
    manager_address: str
    manager_path_note: str
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., already_connected: _Optional[bool] = ..., cluster_context: _Optional[str] = ..., cluster_server: _Optional[str] = ..., namespace: _Optional[str] = ..., manager_namespace: _Optional[str] = ..., session_id: _Optional[str] = ..., manager_version: _Optional[str] = ..., daemon_version: _Optional[str] = ..., version_warning: _Optional[str] = ..., manager_installed: _Optional[bool] = ..., mode: _Optional[_Union[Mode, str]] = ..., socks_address: _Optional[str] = ..., cluster_info: _Optional[_Union[_manager_pb2.ClusterInfo, _Mapping]] = ..., manager_path: _Optional[str] = ..., manager_address: _Optional[str] = ..., manager_path_note: _Optional[str] = ...) -> None: ...

class StatusInfo(_message.Message):
    __slots__ = ("error", "connected", "daemon", "connection", "intercepts", "root", "last_error", "unreachable_since", "reconnected", "raw_dials", "grpc_dials", "raw_dial_note", "pod_route_connections", "tunnel_connections")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    DAEMON_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_FIELD_NUMBER: _ClassVar[int]
    INTERCEPTS_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_SINCE_FIELD_NUMBER: _ClassVar[int]
    RECONNECTED_FIELD_NUMBER: _ClassVar[int]
    RAW_DIALS_FIELD_NUMBER: _ClassVar[int]
    GRPC_DIALS_FIELD_NUMBER: _ClassVar[int]
    RAW_DIAL_NOTE_FIELD_NUMBER: _ClassVar[int]
    POD_ROUTE_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    TUNNEL_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    connected: bool
    daemon: VersionInfo
    connection: ConnectInfo
    intercepts: _containers.RepeatedCompositeFieldContainer[_manager_pb2.InterceptInfo]
    root: bool
    last_error: str
    unreachable_since: float
    reconnected: str
    raw_dials: int
    grpc_dials: int
    raw_dial_note: str
    pod_route_connections: int
    tunnel_connections: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., connected: _Optional[bool] = ..., daemon: _Optional[_Union[VersionInfo, _Mapping]] = ..., connection: _Optional[_Union[ConnectInfo, _Mapping]] = ..., intercepts: _Optional[_Iterable[_Union[_manager_pb2.InterceptInfo, _Mapping]]] = ..., root: _Optional[bool] = ..., last_error: _Optional[str] = ..., unreachable_since: _Optional[float] = ..., reconnected: _Optional[str] = ..., raw_dials: _Optional[int] = ..., grpc_dials: _Optional[int] = ..., raw_dial_note: _Optional[str] = ..., pod_route_connections: _Optional[int] = ..., tunnel_connections: _Optional[int] = ...) -> None: ...

class QuitRequest(_message.Message):
    __slots__ = ("keep_daemon",)
    KEEP_DAEMON_FIELD_NUMBER: _ClassVar[int]
    keep_daemon: bool
    def __init__(self, keep_daemon: _Optional[bool] = ...) -> None: ...

class QuitInfo(_message.Message):
    __slots__ = ("error", "was_connected")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WAS_CONNECTED_FIELD_NUMBER: _ClassVar[int]
    error: Error
    was_connected: bool
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., was_connected: _Optional[bool] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("operation", "message", "fraction", "done")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    operation: str
    message: str
    fraction: float
    done: bool
    def __init__(self, operation: _Optional[str] = ..., message: _Optional[str] = ..., fraction: _Optional[float] = ..., done: _Optional[bool] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("namespace", "only_intercepted")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ONLY_INTERCEPTED_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    only_intercepted: bool
    def __init__(self, namespace: _Optional[str] = ..., only_intercepted: _Optional[bool] = ...) -> None: ...

class WorkloadInfo(_message.Message):
    __slots__ = ("name", "namespace", "kind", "state", "reason", "intercepts", "agent_versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    INTERCEPTS_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    namespace: str
    kind: str
    state: WorkloadState
    reason: str
    intercepts: _containers.RepeatedCompositeFieldContainer[_manager_pb2.InterceptInfo]
    agent_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., namespace: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[_Union[WorkloadState, str]] = ..., reason: _Optional[str] = ..., intercepts: _Optional[_Iterable[_Union[_manager_pb2.InterceptInfo, _Mapping]]] = ..., agent_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkloadList(_message.Message):
    __slots__ = ("error", "workloads")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    workloads: _containers.RepeatedCompositeFieldContainer[WorkloadInfo]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., workloads: _Optional[_Iterable[_Union[WorkloadInfo, _Mapping]]] = ...) -> None: ...

class InterceptRequest(_message.Message):
    __slots__ = ("spec", "replace", "no_mount", "hold", "hold_timeout")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    NO_MOUNT_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    HOLD_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    spec: _manager_pb2.InterceptSpec
    replace: bool
    no_mount: bool
    hold: bool
    hold_timeout: float
    def __init__(self, spec: _Optional[_Union[_manager_pb2.InterceptSpec, _Mapping]] = ..., replace: _Optional[bool] = ..., no_mount: _Optional[bool] = ..., hold: _Optional[bool] = ..., hold_timeout: _Optional[float] = ...) -> None: ...

class InterceptResult(_message.Message):
    __slots__ = ("error", "intercept", "workload_kind")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_KIND_FIELD_NUMBER: _ClassVar[int]
    error: Error
    intercept: _manager_pb2.InterceptInfo
    workload_kind: str
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., intercept: _Optional[_Union[_manager_pb2.InterceptInfo, _Mapping]] = ..., workload_kind: _Optional[str] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class LeaveResult(_message.Message):
    __slots__ = ("error", "note")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    error: Error
    note: str
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., note: _Optional[str] = ...) -> None: ...

class InterceptList(_message.Message):
    __slots__ = ("error", "intercepts")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INTERCEPTS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    intercepts: _containers.RepeatedCompositeFieldContainer[_manager_pb2.InterceptInfo]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., intercepts: _Optional[_Iterable[_Union[_manager_pb2.InterceptInfo, _Mapping]]] = ...) -> None: ...

class GetEnvRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class EnvInfo(_message.Message):
    __slots__ = ("error", "environment", "mounts", "mount_point")
    class EnvironmentEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENVIRONMENT_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    MOUNT_POINT_FIELD_NUMBER: _ClassVar[int]
    error: Error
    environment: _containers.ScalarMap[str, str]
    mounts: _containers.RepeatedCompositeFieldContainer[_manager_pb2.Mount]
    mount_point: str
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., environment: _Optional[_Mapping[str, str]] = ..., mounts: _Optional[_Iterable[_Union[_manager_pb2.Mount, _Mapping]]] = ..., mount_point: _Optional[str] = ...) -> None: ...

class UninstallRequest(_message.Message):
    __slots__ = ("agents", "all_agents", "everything", "namespace", "force")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    ALL_AGENTS_FIELD_NUMBER: _ClassVar[int]
    EVERYTHING_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedScalarFieldContainer[str]
    all_agents: bool
    everything: bool
    namespace: str
    force: bool
    def __init__(self, agents: _Optional[_Iterable[str]] = ..., all_agents: _Optional[bool] = ..., everything: _Optional[bool] = ..., namespace: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class UninstallResult(_message.Message):
    __slots__ = ("error", "restored", "manager_removed", "ended")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    MANAGER_REMOVED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    error: Error
    restored: _containers.RepeatedScalarFieldContainer[str]
    manager_removed: bool
    ended: _containers.RepeatedCompositeFieldContainer[_manager_pb2.InterceptSpec]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., restored: _Optional[_Iterable[str]] = ..., manager_removed: _Optional[bool] = ..., ended: _Optional[_Iterable[_Union[_manager_pb2.InterceptSpec, _Mapping]]] = ...) -> None: ...

class WatchTrafficRequest(_message.Message):
    __slots__ = ("intercept_names", "history", "follow", "include_unmatched")
    INTERCEPT_NAMES_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_UNMATCHED_FIELD_NUMBER: _ClassVar[int]
    intercept_names: _containers.RepeatedScalarFieldContainer[str]
    history: bool
    follow: bool
    include_unmatched: bool
    def __init__(self, intercept_names: _Optional[_Iterable[str]] = ..., history: _Optional[bool] = ..., follow: _Optional[bool] = ..., include_unmatched: _Optional[bool] = ...) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("traffic_id", "target", "header_overrides", "body", "has_body", "method", "path", "request")
    TRAFFIC_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    HEADER_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HAS_BODY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    traffic_id: str
    target: ReplayTarget
    header_overrides: _containers.RepeatedCompositeFieldContainer[_manager_pb2.Header]
    body: bytes
    has_body: bool
    method: str
    path: str
    request: _manager_pb2.TrafficRecord
    def __init__(self, traffic_id: _Optional[str] = ..., target: _Optional[_Union[ReplayTarget, str]] = ..., header_overrides: _Optional[_Iterable[_Union[_manager_pb2.Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., has_body: _Optional[bool] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., request: _Optional[_Union[_manager_pb2.TrafficRecord, _Mapping]] = ...) -> None: ...

class ReplayResult(_message.Message):
    __slots__ = ("error", "record")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    error: Error
    record: _manager_pb2.TrafficRecord
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., record: _Optional[_Union[_manager_pb2.TrafficRecord, _Mapping]] = ...) -> None: ...

class GatherLogsRequest(_message.Message):
    __slots__ = ("max_bytes",)
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_bytes: int
    def __init__(self, max_bytes: _Optional[int] = ...) -> None: ...

class GatheredLog(_message.Message):
    __slots__ = ("error", "log")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    error: Error
    log: _manager_pb2.ComponentLog
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., log: _Optional[_Union[_manager_pb2.ComponentLog, _Mapping]] = ...) -> None: ...

class HoldRequest(_message.Message):
    __slots__ = ("name", "on", "timeout")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    name: str
    on: bool
    timeout: float
    def __init__(self, name: _Optional[str] = ..., on: _Optional[bool] = ..., timeout: _Optional[float] = ...) -> None: ...

class HoldResult(_message.Message):
    __slots__ = ("error", "name", "on", "timeout", "released", "mirror", "copies_dropped")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    MIRROR_FIELD_NUMBER: _ClassVar[int]
    COPIES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    error: Error
    name: str
    on: bool
    timeout: float
    released: int
    mirror: bool
    copies_dropped: int
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., name: _Optional[str] = ..., on: _Optional[bool] = ..., timeout: _Optional[float] = ..., released: _Optional[int] = ..., mirror: _Optional[bool] = ..., copies_dropped: _Optional[int] = ...) -> None: ...

class ListHeldRequest(_message.Message):
    __slots__ = ("intercept_names",)
    INTERCEPT_NAMES_FIELD_NUMBER: _ClassVar[int]
    intercept_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, intercept_names: _Optional[_Iterable[str]] = ...) -> None: ...

class HeldRequest(_message.Message):
    __slots__ = ("id", "intercept_name", "workload", "namespace", "method", "path", "headers", "body", "source", "received_unix", "deadline_unix", "mode")
    ID_FIELD_NUMBER: _ClassVar[int]
    INTERCEPT_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_UNIX_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    id: str
    intercept_name: str
    workload: str
    namespace: str
    method: str
    path: str
    headers: _containers.RepeatedCompositeFieldContainer[_manager_pb2.Header]
    body: bytes
    source: str
    received_unix: float
    deadline_unix: float
    mode: str
    def __init__(self, id: _Optional[str] = ..., intercept_name: _Optional[str] = ..., workload: _Optional[str] = ..., namespace: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[_manager_pb2.Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., source: _Optional[str] = ..., received_unix: _Optional[float] = ..., deadline_unix: _Optional[float] = ..., mode: _Optional[str] = ...) -> None: ...

class HeldList(_message.Message):
    __slots__ = ("error", "held", "holding")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    error: Error
    held: _containers.RepeatedCompositeFieldContainer[HeldRequest]
    holding: _containers.RepeatedCompositeFieldContainer[HoldResult]
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., held: _Optional[_Iterable[_Union[HeldRequest, _Mapping]]] = ..., holding: _Optional[_Iterable[_Union[HoldResult, _Mapping]]] = ...) -> None: ...

class HeldDecision(_message.Message):
    __slots__ = ("id", "action", "method", "path", "headers", "has_headers", "body", "has_body", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    HAS_HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    HAS_BODY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: HeldAction
    method: str
    path: str
    headers: _containers.RepeatedCompositeFieldContainer[_manager_pb2.Header]
    has_headers: bool
    body: bytes
    has_body: bool
    status: int
    def __init__(self, id: _Optional[str] = ..., action: _Optional[_Union[HeldAction, str]] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[_manager_pb2.Header, _Mapping]]] = ..., has_headers: _Optional[bool] = ..., body: _Optional[bytes] = ..., has_body: _Optional[bool] = ..., status: _Optional[int] = ...) -> None: ...

class HeldOutcome(_message.Message):
    __slots__ = ("error", "id", "decided", "status", "reason", "headers", "body", "error_text", "seconds")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    DECIDED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ERROR_TEXT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    error: Error
    id: str
    decided: str
    status: int
    reason: str
    headers: _containers.RepeatedCompositeFieldContainer[_manager_pb2.Header]
    body: bytes
    error_text: str
    seconds: float
    def __init__(self, error: _Optional[_Union[Error, _Mapping]] = ..., id: _Optional[str] = ..., decided: _Optional[str] = ..., status: _Optional[int] = ..., reason: _Optional[str] = ..., headers: _Optional[_Iterable[_Union[_manager_pb2.Header, _Mapping]]] = ..., body: _Optional[bytes] = ..., error_text: _Optional[str] = ..., seconds: _Optional[float] = ...) -> None: ...

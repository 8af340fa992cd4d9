"""Traffic capture: one `TrafficRecord` per HTTP exchange on an intercepted port.

`Exchange` follows one request/response while it is relayed (the shared
`tp_protocol.traffic.Recorder` builds the record) and hands the finished record to a
`Sink` (the link's bounded queue: rows are dropped, oldest first, rather than ever
blocking traffic).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.traffic import Recorder

from tp_cluster.agent.intercepts import Intercept
from tp_cluster.agent.mirror import MirrorCopy

Sink = Callable[[Any], None]

_ids = itertools.count(1)


class Exchange:
    def __init__(self, sink: Sink, *, pod: str, workload: str, namespace: str, port: int,
                 source: str, request: Any, intercept: Intercept | None, body_limit: int,
                 redact: Collection[str] = (), port_name: str = "") -> None:
        self._sink = sink
        self.copy: MirrorCopy | None = None
        """Set when mirrors want this request: it gets the body and the finished row."""
        record = pb.TrafficRecord(
            id=f"{pod or workload}-{next(_ids)}", workload=workload, namespace=namespace,
            pod=pod, port=port, source=source, service_port_name=port_name,
            routed_to=pb.ROUTED_TO_LOCAL if intercept else pb.ROUTED_TO_CLUSTER)
        if intercept is not None:
            record.intercept_id = intercept.id
            record.intercept_name = intercept.name
            record.client_session = intercept.client_session
            record.mode = pb.TRAFFIC_MODE_INTERCEPT
            record.developer = intercept.owner
        self._recorder = Recorder(record, body_limit=body_limit, redact=redact)
        self._recorder.request_head(request.method, request.target, request.http_version,
                                    request.headers.raw_items())
        self.record = record

    def request_body(self) -> bytes | None:
        """The whole request body, or None when it was larger than the capture limit."""
        return self._recorder.request_body()

    def request_data(self, data: bytes) -> None:
        self._recorder.request_data(data)
        if self.copy is not None:
            self.copy.add(data)

    def response_head(self, response: Any) -> None:
        self._recorder.response_head(response.status_code, response.reason,
                                     response.headers.raw_items())

    def response_data(self, data: bytes) -> None:
        self._recorder.response_data(data)

    def finish(self, error: str = "") -> None:
        if not self._recorder.done:
            record = self._recorder.finish(error)
            if self.copy is not None and not error:
                self.copy.deliver(record)  # mirror rows replace the plain row
            else:
                self._sink(record)

"""Traffic capture: one `TrafficRecord` per HTTP exchange on an intercepted port.

`Exchange` follows one request/response while it is relayed (the shared
`tp_protocol.traffic.Recorder` builds the record) and hands the finished record to a
`Sink` (the link's bounded queue: rows are dropped, oldest first, rather than ever
blocking traffic).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Collection
from typing import Any

from tp_protocol import manager_pb2 as pb
from tp_protocol.traffic import Recorder

from tp_cluster.agent.intercepts import Intercept
from tp_cluster.agent.mirror import MirrorCopy

Sink = Callable[[Any], None]

_ids = itertools.count(1)


class Exchange:
    """One exchange's row. Only the clock and the body counters run while it is relayed;
    the identity and head fields are filled in by `finish`, after the response went out,
    so that an unmatched request pays for its row off the caller's critical path."""

    def __init__(self, sink: Sink, *, pod: str, workload: str, namespace: str, port: int,
                 source: str, request: Any, intercept: Intercept | None, body_limit: int,
                 redact: Collection[str] = (), port_name: str = "") -> None:
        self._sink = sink
        self.copy: MirrorCopy | None = None
        """Set when mirrors want this request: it gets the body and the finished row."""
        self._identity = (pod, workload, namespace, port, source, port_name, intercept)
        self._request = request
        self._response: Any = None
        record = pb.TrafficRecord()
        record.time.FromNanoseconds(time.time_ns())  # cheaper than GetCurrentTime
        self._recorder = Recorder(record, body_limit=body_limit, redact=redact)
        self.record = record
        """Fields set here directly (a 502's status) stay; the rest is filled by finish."""

    def request_body(self) -> bytes | None:
        """The whole request body, or None when it was larger than the capture limit."""
        return self._recorder.request_body()

    def request_data(self, data: bytes) -> None:
        self._recorder.request_data(data)
        if self.copy is not None:
            self.copy.add(data)

    def response_head(self, response: Any) -> None:
        self._recorder.first_byte()
        self._response = response

    def response_data(self, data: bytes) -> None:
        self._recorder.response_data(data)

    def _fill(self) -> None:
        pod, workload, namespace, port, source, port_name, intercept = self._identity
        record = self.record
        record.id = f"{pod or workload}-{next(_ids)}"
        record.workload = workload
        record.namespace = namespace
        record.pod = pod
        record.port = port
        record.source = source
        record.service_port_name = port_name
        record.routed_to = pb.ROUTED_TO_LOCAL if intercept else pb.ROUTED_TO_CLUSTER
        if intercept is not None:
            record.intercept_id = intercept.id
            record.intercept_name = intercept.name
            record.client_session = intercept.client_session
            record.mode = pb.TRAFFIC_MODE_INTERCEPT
            record.developer = intercept.owner
        request, response = self._request, self._response
        self._recorder.request_head(request.method, request.target, request.http_version,
                                    request.headers.raw_items())
        if response is not None:
            status, reason = record.status, record.reason  # a 502 set by the router wins
            self._recorder.response_head(response.status_code, response.reason,
                                         response.headers.raw_items(), first_byte=False)
            if status:
                record.status, record.reason = status, reason

    def finish(self, error: str = "") -> None:
        if not self._recorder.done:
            self._fill()
            record = self._recorder.finish(error)
            if self.copy is not None and not error:
                self.copy.deliver(record)  # mirror rows replace the plain row
            else:
                self._sink(record)

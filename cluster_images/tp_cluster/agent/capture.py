"""Traffic capture: one `TrafficRecord` per HTTP exchange on an intercepted port.

`Exchange` follows one request/response while it is relayed and hands the finished
record to a `Sink` (the link's bounded queue: rows are dropped, oldest first, rather
than ever blocking traffic).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from google.protobuf import timestamp_pb2
from tp_protocol import manager_pb2 as pb

from tp_cluster.agent.intercepts import Intercept

Sink = Callable[[Any], None]

_ids = itertools.count(1)


def _headers(raw: Any) -> list[Any]:
    return [pb.Header(name=n.decode("latin-1"), value=v.decode("latin-1")) for n, v in raw]


class Exchange:
    def __init__(self, sink: Sink, *, pod: str, workload: str, namespace: str, port: int,
                 source: str, request: Any, intercept: Intercept | None, body_limit: int
                 ) -> None:
        self._sink = sink
        self._limit = body_limit
        self._start = time.perf_counter()
        self._first_byte: float | None = None
        self._done = False
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        self.record = pb.TrafficRecord(
            id=f"{pod or workload}-{next(_ids)}", time=now, workload=workload,
            namespace=namespace, pod=pod, port=port, source=source,
            method=request.method.decode("latin-1"), path=request.target.decode("latin-1"),
            http_version=request.http_version.decode("latin-1"),
            request_headers=_headers(request.headers.raw_items()),
            routed_to=pb.ROUTED_TO_LOCAL if intercept else pb.ROUTED_TO_CLUSTER)
        if intercept is not None:
            self.record.intercept_id = intercept.id
            self.record.intercept_name = intercept.name
            self.record.client_session = intercept.client_session
        self._request_body = bytearray()
        self._response_body = bytearray()

    def _keep(self, buffer: bytearray, data: bytes) -> bool:
        room = self._limit - len(buffer)
        if room > 0:
            buffer += data[:room]
        return len(data) > max(room, 0)

    def request_data(self, data: bytes) -> None:
        self.record.request_size += len(data)
        if self._keep(self._request_body, data):
            self.record.request_body_truncated = True

    def response_head(self, response: Any) -> None:
        self._first_byte = time.perf_counter()
        self.record.status = response.status_code
        self.record.reason = response.reason.decode("latin-1")
        del self.record.response_headers[:]
        self.record.response_headers.extend(_headers(response.headers.raw_items()))

    def response_data(self, data: bytes) -> None:
        self.record.response_size += len(data)
        if self._keep(self._response_body, data):
            self.record.response_body_truncated = True

    def finish(self, error: str = "") -> None:
        if self._done:
            return
        self._done = True
        end = time.perf_counter()
        record = self.record
        record.duration_ms = (end - self._start) * 1000.0
        record.time_to_first_byte_ms = ((self._first_byte or end) - self._start) * 1000.0
        record.request_body_prefix = bytes(self._request_body)
        record.response_body_prefix = bytes(self._response_body)
        record.error = error
        self._sink(record)

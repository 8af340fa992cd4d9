"""Core/v1 Events as a real cluster writes them: one Event per distinct occurrence,
and a repeat (same involved object, type, reason, message and source) patched onto the
first one (`count` + 1, new `lastTimestamp`) instead of a new object, as client-go's
EventCorrelator does. Shared by the controllers and the kubelet; the callers do the I/O.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Write:
    """What to send: a new Event (`patch` is None) or a patch of the existing `name`."""

    namespace: str
    name: str
    body: Obj
    patch: Obj | None = None


class Aggregator:
    """Turns (object, type, reason, message) into Event writes, aggregating repeats."""

    def __init__(self, component: str, host: str = "", max_keys: int = 4096) -> None:
        self.component, self.host, self.max_keys = component, host, max_keys
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, ...], tuple[str, int, str]] = OrderedDict()

    def _key(self, obj: Obj, etype: str, reason: str, message: str, field_path: str
             ) -> tuple[str, ...]:
        meta = obj.get("metadata", {})
        return (str(meta.get("namespace") or ""), str(obj.get("kind")), str(meta.get("name")),
                str(meta.get("uid")), field_path, etype, reason, message)

    def record(self, obj: Obj, etype: str, reason: str, message: str,
               field_path: str = "") -> Write:
        meta = obj.get("metadata", {})
        ns = meta.get("namespace") or "default"
        ts = _now()
        key = self._key(obj, etype, reason, message, field_path)
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None:
                name, count, first = seen
                self._seen[key] = (name, count + 1, first)
                self._seen.move_to_end(key)
                return Write(ns, name, {}, {"count": count + 1, "lastTimestamp": ts})
            name = f"{meta.get('name')}.{time.time_ns():x}"
            self._seen[key] = (name, 1, ts)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
        involved: Obj = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                         "namespace": meta.get("namespace"), "name": meta.get("name"),
                         "uid": meta.get("uid"),
                         "resourceVersion": meta.get("resourceVersion")}
        if field_path:
            involved["fieldPath"] = field_path
        source: Obj = {"component": self.component}
        if self.host:
            source["host"] = self.host
        body: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message, "type": etype,
            "source": source, "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        return Write(ns, name, body)

    def forget(self, write: Write) -> None:
        """The aggregated Event is gone (deleted, expired): the next repeat creates one."""
        with self._lock:
            for key, (name, _, _) in list(self._seen.items()):
                if name == write.name and key[0] in (write.namespace, ""):
                    del self._seen[key]

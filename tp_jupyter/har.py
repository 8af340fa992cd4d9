"""Traffic out of and into tp-jupyter: HAR 1.2, CSV, curl and Python code.

    to_har(df, path=None) -> dict           HTTP Archive 1.2 (mitmproxy, browser devtools),
                                            written to `path` when given
    har_rows(path) -> list[dict]            a HAR (ours, mitmproxy's, a browser's) as traffic
                                            rows (`tp_jupyter.read_har`: as a DataFrame
                                            that `replay` accepts, tp_jupyter.debugger)
    request_record(row) -> TrafficRecord    a row's request for the daemon's Replay
    to_curl(row) -> Snippet                 one row as a `curl` command line
    to_python(row, client="requests") -> Snippet   ... as Python (`requests` or `httpx`)
    exported(df, fmt, output)               `tp traffic --format har|csv|curl [-o FILE]`

A HAR entry carries what a traffic row knows in HAR's own fields (URL from the Host header,
headers, bodies, status, duration as `time` and `timings.wait`); what HAR has no field for
(intercept, workload, namespace, pod, routed_to, row id, error, truncation) goes into the
custom field `_tp` of the entry (HAR 1.2 allows custom fields that start with `_`), so a
HAR written here reads back into the same row. Bodies cut at capture
(`intercept.capture_body_limit`) are exported without the ` [truncated]` marker and
flagged `_tp.request_truncated` / `_tp.response_truncated` (and `content.comment`).

A row read from a HAR has `captured_by == "har"`: `replay` sends its request as it is
(the daemon keeps no row of it), to the intercept named in `_tp` or, for a HAR from
elsewhere, the one you name (`replay(row, intercept=NAME)`) or your only one.

Redacted headers (`[redacted]`, `intercept.capture_redact_headers`) stay redacted in a
HAR; curl and Python code leave them out (a replay does too).

Errors: a file that is missing, not JSON or not a HAR is a one-line `UsageError`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import http
import json
import math
import shlex
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tp_protocol import VERSION
from tp_protocol import manager_pb2 as mpb
from tp_protocol.replay import FRAMING, HOP_BY_HOP
from tp_protocol.traffic import REDACTED

from tp_jupyter.errors import UsageError
from tp_jupyter.render import Rendered

if TYPE_CHECKING:
    import pandas as pd

TRUNCATED = " [truncated]"
"""The marker a traffic row's body text ends with when capture cut it."""

_CORE = ("time", "method", "path", "status", "duration_ms", "request_headers",
         "response_headers", "request_body", "response_body")
"""Columns HAR has its own fields for; every other column goes into `_tp`."""


class Snippet(str):
    """Code as a string that a notebook shows as code (not as a quoted repr)."""

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


# --- rows -> HAR ------------------------------------------------------------------------------

def _rows(rows: Any) -> list[dict[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):   # a DataFrame
        return [dict(r) for r in rows.to_dict("records")]
    if hasattr(rows, "to_dict"):                                # one row (a Series)
        return [dict(rows.to_dict())]
    if isinstance(rows, Mapping):
        return [dict(rows)]
    if isinstance(rows, Iterable) and not isinstance(rows, str | bytes):
        return [r for row in rows for r in _rows(row)]
    raise UsageError(f"expected traffic rows (a DataFrame, df.iloc[i] or a dict), not a "
                     f"{type(rows).__name__}")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """A cell as JSON (timestamps as ISO 8601, NaN/NaT as null)."""
    if _missing(value) or value.__class__.__name__ == "NaTType":
        return None
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):     # numpy scalars
        return value.item()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)


def body_text(row: Mapping[str, Any], which: str) -> tuple[str, bool]:
    """A row's `request`/`response` body without the truncation marker, and whether it
    was truncated (the marker, or a `<which>_truncated` column)."""
    text = row.get(f"{which}_body")
    text = "" if _missing(text) else str(text)
    flag = row.get(f"{which}_truncated")
    truncated = False if _missing(flag) else bool(flag)   # a missing column reads as NaN
    if text.endswith(TRUNCATED):
        text, truncated = text[:-len(TRUNCATED)], True
    return text, truncated


def _headers(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def url_of(row: Mapping[str, Any]) -> str:
    """http://HOST/path: HOST from the Host header, else WORKLOAD.NAMESPACE."""
    host = _header(_headers(row.get("request_headers")), "host")
    if not host:
        host = ".".join(str(row[k]) for k in ("workload", "namespace")
                        if not _missing(row.get(k)) and row.get(k)) or "localhost"
    path = row.get("path")
    return f"http://{host}{'' if _missing(path) else path or '/'}"


def _when(value: Any) -> str:
    if _missing(value) or value.__class__.__name__ == "NaTType":
        value = datetime.datetime.now(datetime.UTC)
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return str(value.astimezone(datetime.UTC).isoformat(timespec="milliseconds")).replace(
        "+00:00", "Z")


def _entry(row: Mapping[str, Any]) -> dict[str, Any]:
    req_headers = _headers(row.get("request_headers"))
    resp_headers = _headers(row.get("response_headers"))
    req_body, req_cut = body_text(row, "request")
    resp_body, resp_cut = body_text(row, "response")
    url = url_of(row)
    status = 0 if _missing(row.get("status")) else int(row["status"])
    duration = 0.0 if _missing(row.get("duration_ms")) else float(row["duration_ms"])
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    request: dict[str, Any] = {
        "method": str(row.get("method") or "GET"), "url": url, "httpVersion": "HTTP/1.1",
        "cookies": [], "headers": [{"name": k, "value": v} for k, v in req_headers.items()],
        "queryString": [{"name": k, "value": v} for k, v in urllib.parse.parse_qsl(
            urllib.parse.urlsplit(url).query, keep_blank_values=True)],
        "headersSize": -1, "bodySize": len(req_body.encode())}
    if req_body:
        request["postData"] = {"mimeType": _header(req_headers, "content-type"),
                               "text": req_body}
    content: dict[str, Any] = {"size": len(resp_body.encode()),
                               "mimeType": _header(resp_headers, "content-type"),
                               "text": resp_body}
    if resp_cut:
        content["comment"] = "truncated at capture (intercept.capture_body_limit)"
    tp = {k: _plain(v) for k, v in row.items() if k not in _CORE}
    tp.update(request_truncated=req_cut, response_truncated=resp_cut)
    return {
        "startedDateTime": _when(row.get("time")), "time": duration, "request": request,
        "response": {"status": status, "statusText": reason, "httpVersion": "HTTP/1.1",
                     "cookies": [], "content": content,
                     "headers": [{"name": k, "value": v} for k, v in resp_headers.items()],
                     "redirectURL": _header(resp_headers, "location"), "headersSize": -1,
                     "bodySize": len(resp_body.encode())},
        "cache": {}, "timings": {"send": 0, "wait": duration, "receive": 0},
        "_tp": tp,
    }


def to_har(rows: Any, path: str | Path | None = None) -> dict[str, Any]:
    """Traffic rows (a DataFrame, `df.iloc[i]`, dicts) as an HTTP Archive 1.2 document;
    written (UTF-8, indented) to `path` when given. mitmproxy (`mitmproxy -r FILE`) and
    the browsers' devtools (Network > Import HAR) open it."""
    har = {"log": {"version": "1.2",
                   "creator": {"name": "tp-jupyter", "version": VERSION},
                   "entries": [_entry(row) for row in _rows(rows)]}}
    if path is not None:
        target = Path(path).expanduser()
        try:
            target.write_text(json.dumps(har, indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {path} ({e.strerror}); give a writable "
                             "path") from e
    return har


# --- HAR -> rows ------------------------------------------------------------------------------

def _bad(path: str | Path, why: str) -> UsageError:
    return UsageError(f"cannot read {path} as a HAR file: {why}; give a HAR 1.2 file (saved "
                      "by tp traffic --format har, mitmproxy or a browser's devtools)")


def _text_of(part: Mapping[str, Any], path: str | Path, where: str) -> str:
    text = part.get("text") or ""
    if not isinstance(text, str):
        raise _bad(path, f"{where}.text is not a string")
    if part.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError) as e:
            raise _bad(path, f"{where}.text is not valid base64 ({e})") from e
    return text


def _header_dict(items: Any, path: str | Path, where: str) -> dict[str, str]:
    if not isinstance(items, list):
        raise _bad(path, f"{where}.headers is not a list")
    headers: dict[str, str] = {}
    for h in items:
        if not isinstance(h, Mapping) or "name" not in h or "value" not in h:
            raise _bad(path, f"{where}.headers has an entry without name and value")
        name = str(h["name"])
        if name.startswith(":"):      # HTTP/2 pseudo-headers (browsers): not headers
            continue
        value = str(h["value"])
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _row(entry: Any, i: int, path: str | Path) -> dict[str, Any]:
    import pandas as pd

    where = f"entry {i}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("request"), Mapping):
        raise _bad(path, f"{where} has no request")
    req: Mapping[str, Any] = entry["request"]
    resp: Mapping[str, Any] = entry.get("response") or {}
    if not isinstance(resp, Mapping):
        raise _bad(path, f"{where}.response is not an object")
    if not isinstance(req.get("method"), str) or not isinstance(req.get("url"), str):
        raise _bad(path, f"{where}.request needs a method and a url")
    url = urllib.parse.urlsplit(req["url"])
    req_headers = _header_dict(req.get("headers", []), path, f"{where}.request")
    if url.netloc and not any(k.lower() == "host" for k in req_headers):
        req_headers = {"Host": url.netloc, **req_headers}
    tp: Mapping[str, Any] = entry.get("_tp") or {}
    if not isinstance(tp, Mapping):
        tp = {}
    try:
        when = pd.Timestamp(entry.get("startedDateTime"))
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    except (TypeError, ValueError) as e:
        raise _bad(path, f"{where}.startedDateTime is not a date ({e})") from e
    try:
        status = int(resp.get("status") or 0)
        duration = float(entry.get("time") or 0.0)
    except (TypeError, ValueError) as e:
        raise _bad(path, f"{where} has a status or time that is not a number") from e
    req_body = _text_of(req.get("postData") or {}, path, f"{where}.request.postData")
    resp_body = _text_of(resp.get("content") or {}, path, f"{where}.response.content")
    row: dict[str, Any] = {k: v for k, v in tp.items()
                           if k not in ("request_truncated", "response_truncated")}
    row.update({
        "time": when, "method": req["method"],
        "path": (url.path or "/") + (f"?{url.query}" if url.query else ""),
        "status": status, "duration_ms": duration, "request_headers": req_headers,
        "response_headers": _header_dict(resp.get("headers", []), path,
                                         f"{where}.response"),
        "request_body": req_body + (TRUNCATED if tp.get("request_truncated") else ""),
        "response_body": resp_body + (TRUNCATED if tp.get("response_truncated") else ""),
        "captured_by": "har", "id": str(tp.get("id") or f"har-{i}"),
        "request_truncated": bool(tp.get("request_truncated")),
        "response_truncated": bool(tp.get("response_truncated")),
    })
    for column in ("intercept", "routed_to", "error", "workload", "namespace", "pod",
                   "source", "client_session"):
        row[column] = "" if _missing(row.get(column)) else row.get(column, "")
    row.setdefault("request_size", len(req_body.encode()))
    row.setdefault("response_size", len(resp_body.encode()))
    return row


def har_rows(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a HAR file as traffic rows (dicts with the DataFrame's columns);
    `tp_jupyter.read_har` makes them a DataFrame."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _bad(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(path, str(getattr(e, "strerror", None) or e)) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(path, f"not JSON (line {e.lineno} column {e.colno}: {e.msg})") from None
    log = doc.get("log") if isinstance(doc, Mapping) else None
    if not isinstance(log, Mapping) or not isinstance(log.get("entries"), list):
        raise _bad(path, "no log.entries list")
    return [_row(entry, i, path) for i, entry in enumerate(log["entries"])]


def request_record(row: Mapping[str, Any], intercept: str | None = None
                   ) -> mpb.TrafficRecord:
    """The request of a row as the daemon's Replay takes it (`ReplayRequest.request`):
    method, path, headers, body, and the intercept (`intercept`, or the row's, or blank
    for the daemon to take your only one)."""
    body, truncated = body_text(row, "request")
    headers = row.get("request_headers")
    return mpb.TrafficRecord(
        id=str(row.get("id") or ""), intercept_name=intercept or str(row.get("intercept")
                                                                      or ""),
        workload="" if intercept else str(row.get("workload") or ""),
        namespace="" if intercept else str(row.get("namespace") or ""),
        method=str(row.get("method") or "GET"), path=str(row.get("path") or "/"),
        request_headers=[mpb.Header(name=str(k), value=str(v))
                         for k, v in (headers.items() if isinstance(headers, Mapping)
                                      else ())],
        request_body_prefix=body.encode(), request_body_truncated=truncated)


# --- one row as code --------------------------------------------------------------------------

_LEFT_OUT = HOP_BY_HOP | FRAMING | {"host"}


def _sent_headers(row: Mapping[str, Any]) -> dict[str, str]:
    return {k: v for k, v in _headers(row.get("request_headers")).items()
            if k.lower() not in _LEFT_OUT and v != REDACTED}


def _one(row: Any, what: str) -> dict[str, Any]:
    rows = _rows(row)
    if len(rows) != 1:
        raise UsageError(f"{what}() takes one row, not {len(rows)}: pass df.iloc[i]")
    return rows[0]


def to_curl(row: Any) -> Snippet:
    """One row's request as a `curl` command (redacted headers left out)."""
    r = _one(row, "to_curl")
    body, truncated = body_text(r, "request")
    if truncated:
        raise UsageError("the captured request body was truncated: the command would send "
                         "part of it; raise intercept.capture_body_limit and capture again")
    method = str(r.get("method") or "GET")
    parts = ["curl"]
    if method != "GET" or body:
        parts += ["-X", method]
    parts.append(url_of(r))
    for k, v in _sent_headers(r).items():
        parts += ["-H", f"{k}: {v}"]
    if body:
        parts += ["--data-binary", body]
    return Snippet(" ".join(shlex.quote(p) for p in parts))


def _json_body(headers: Mapping[str, str], body: str) -> Any:
    if "json" not in _header(headers, "content-type").lower():
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def to_python(row: Any, client: str = "requests") -> Snippet:
    """One row's request as Python code for `requests` or `httpx` (redacted headers left
    out; a JSON body as `json=`)."""
    if client not in ("requests", "httpx"):
        raise UsageError(f"to_python(client={client!r}): use 'requests' or 'httpx'")
    r = _one(row, "to_python")
    body, truncated = body_text(r, "request")
    if truncated:
        raise UsageError("the captured request body was truncated: the code would send "
                         "part of it; raise intercept.capture_body_limit and capture again")
    headers = _sent_headers(r)
    lines = [f"import {client}", "", f"response = {client}.request(",
             f"    {str(r.get('method') or 'GET')!r},", f"    {url_of(r)!r},"]
    if headers:
        lines.append(f"    headers={headers!r},")
    decoded = _json_body(headers, body) if body else None
    if decoded is not None:
        lines.append(f"    json={decoded!r},")
    elif body:
        lines.append(f"    {'data' if client == 'requests' else 'content'}={body!r},")
    lines += ["    timeout=10,", ")", "print(response.status_code, response.text)"]
    return Snippet("\n".join(lines))


# --- `tp traffic --format har|csv|curl` ---------------------------------------------------------

@dataclass(repr=False)
class Exported(Rendered):
    """`tp traffic --format har|csv|curl`: the document, or where it was written."""

    frame: Any     # the DataFrame (`%tp traffic ... -o VAR` stores it)
    format: str
    text: str
    note: str = ""

    def __str__(self) -> str:
        return self.note or self.text

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(str(self))}</pre>"


def exported(df: pd.DataFrame, fmt: str, output: str | None = None,
             in_notebook: bool = False) -> Exported:
    """The rows as `fmt` (har, csv or curl); in a terminal `output` is the file to write
    (in a notebook the variable that gets the DataFrame)."""
    if fmt == "har":
        text = json.dumps(to_har(df), indent=2, ensure_ascii=False)
    elif fmt == "csv":
        text = df.to_csv(index=False).rstrip("\n")
    else:
        text = "\n".join(to_curl(r) for r in _rows(df))
    result = Exported(df, fmt, text)
    if output and not in_notebook:
        try:
            Path(output).expanduser().write_text(text + "\n", encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write {output} ({e.strerror}); give a writable "
                             "path") from e
        result.note = f"Wrote {len(df)} rows to {output} as {fmt.upper()}"
    elif output:
        result.note = f"Stored {len(df)} rows in the variable {output}"
    return result

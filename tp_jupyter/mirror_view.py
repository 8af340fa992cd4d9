"""How filters and mirrors read in `tp list`/`tp status` blocks, JSON output and the panel.

Kept apart from `api` so the intercept block stays one function there; the strings are
the seed's `header("k") ~= regexp("v")` style, extended to paths and methods.
"""

from __future__ import annotations

from typing import Any

from tp_protocol import manager_pb2 as mpb


def filter_lines(spec: mpb.InterceptSpec) -> list[str]:
    """One condition per line (all must hold)."""
    lines = [f'header("{m.name}") ~= regexp("{m.regex}")' for m in spec.header_matches]
    if spec.path_equal:
        lines.append(f'path == "{spec.path_equal}"')
    if spec.path_prefix:
        lines.append(f'path starts with "{spec.path_prefix}"')
    if spec.path_regex:
        lines.append(f'path ~= regexp("{spec.path_regex}")')
    if spec.methods:
        lines.append(f"method in ({', '.join(spec.methods)})")
    return lines


def copies_text(info: mpb.InterceptInfo) -> str:
    """`12 sent, 3 dropped (queue full)` for a mirror."""
    text = f"{info.mirror_copied} sent, {info.mirror_dropped} dropped"
    return text + " (the local side was slower than the traffic)" if info.mirror_dropped \
        else text


def intercept_fields(info: mpb.InterceptInfo) -> dict[str, Any]:
    """The machine-readable fields filters and mirrors add to an intercept object."""
    spec = info.spec
    return {
        "mode": "mirror" if spec.mirror else "intercept",
        "http_path_equal": spec.path_equal or None,
        "http_path_prefix": spec.path_prefix or None,
        "http_path_regex": spec.path_regex or None,
        "http_methods": list(spec.methods),
        "mirror": ({"copied": info.mirror_copied, "dropped": info.mirror_dropped}
                   if spec.mirror else None),
    }


def panel_text(info: mpb.InterceptInfo) -> str:
    """One line for the panel: what it matches, and a mirror's counters."""
    spec = info.spec
    what = "; ".join(filter_lines(spec)) or ("every request" if spec.mirror else "all TCP")
    if spec.mirror:
        return f"mirror of {what}: {copies_text(info)}"
    return what

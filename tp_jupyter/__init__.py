"""tp-jupyter's front: the `tp` CLI, the `%tp` magics and the plain-Python API.

The front reaches the cluster only through the workstation daemon. This package is its
one public surface (`__all__`):

    %load_ext tp_jupyter                   the IPython extension (`%tp`, `%%tp intercept`)
    connect(), status(), list_workloads(), intercept(), leave(), uninstall(), quit()
                                           the plain-Python API (results render themselves)
    traffic(), replay(row, to=...)         captured traffic as pandas
    hold(name, on=True), held()            hold and edit: requests waiting for .forward(),
                                           .respond() or .drop()
    wiretap(), compare(df)                 mirror a workload; where your code answers
                                           differently from the cluster
    filter_traffic(df, "~m POST & ~s 5..") mitmproxy's filter syntax (tp_jupyter.filters)
    to_har(), read_har(), to_curl(), to_python()   export and import (tp_jupyter.har)
    to_pytest(rows, path, against=...)     traffic into tests (tp_jupyter.testgen)
    panel()                                the live widget (Leave buttons, live traffic)
    Request, Response                      what cell handlers take and may return
    TpError, UsageError                    what the front raises on purpose

Everything but the version is imported on first use, so the `tp` CLI stays light.
"""

from typing import Any

from tp_protocol import VERSION

__version__ = VERSION

_LAZY = {
    "connect": "tp_jupyter.api", "status": "tp_jupyter.api", "quit": "tp_jupyter.api",
    "list_workloads": "tp_jupyter.api", "intercept": "tp_jupyter.api",
    "leave": "tp_jupyter.api", "uninstall": "tp_jupyter.api",
    "traffic": "tp_jupyter.traffic_data", "replay": "tp_jupyter.debugger",
    "panel": "tp_jupyter.session",
    "hold": "tp_jupyter.holding", "held": "tp_jupyter.holding",
    "wiretap": "tp_jupyter.mirror_command", "compare": "tp_jupyter.compare",
    "filter_traffic": "tp_jupyter.filters", "to_har": "tp_jupyter.har",
    "read_har": "tp_jupyter.debugger", "to_curl": "tp_jupyter.har", "to_python": "tp_jupyter.har",
    "to_pytest": "tp_jupyter.testgen",
    "Request": "tp_jupyter.handlers", "Response": "tp_jupyter.handlers",
    "TpError": "tp_jupyter.errors", "UsageError": "tp_jupyter.errors",
}

__all__ = ["Request", "Response", "TpError", "UsageError", "__version__", "compare", "connect",
           "filter_traffic", "held", "hold", "intercept", "leave", "list_workloads",
           "load_ipython_extension", "panel", "quit", "read_har", "replay", "status",
           "to_curl", "to_har", "to_pytest", "to_python", "traffic", "uninstall",
           "unload_ipython_extension", "wiretap"]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tp_jupyter`."""
    from tp_jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext tp_jupyter`: leaves no intercept or thread behind."""
    from tp_jupyter.magics import unload_ipython_extension as unload

    unload(ipython)


assert set(__all__) == {"__version__", "load_ipython_extension", "unload_ipython_extension",
                        *_LAZY}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value   # once: later lookups skip this function
        return value
    raise AttributeError(f"module 'tp_jupyter' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

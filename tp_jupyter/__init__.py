"""tp-jupyter's front: the `tp` CLI, the `%tp` magics and the plain-Python API.

The front reaches the cluster only through the workstation daemon.

    %load_ext tp_jupyter               the IPython extension (tp_jupyter.magics)
    tp_jupyter.traffic(), replay(row)  captured traffic as pandas (tp_jupyter.traffic)
    tp_jupyter.panel()                 the live widget (tp_jupyter.widgets)
    Request, Response                  what cell handlers take and may return

Everything but the version is imported on first use, so the `tp` CLI stays light.
"""

from typing import Any

from tp_protocol import VERSION

__version__ = VERSION

_LAZY = {"replay": "tp_jupyter.traffic", "panel": "tp_jupyter.widgets",
         "Request": "tp_jupyter.handlers", "Response": "tp_jupyter.handlers"}


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext tp_jupyter`."""
    from tp_jupyter.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext tp_jupyter`: leaves no intercept or thread behind."""
    from tp_jupyter.magics import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    import importlib

    if name == "traffic":   # the module is callable: tp_jupyter.traffic() is the function
        return importlib.import_module("tp_jupyter.traffic")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tp_jupyter' has no attribute {name!r}")

"""Errors of the sandbox tooling (`tp sandbox ...` and its Python API).

    SandboxError                 base: one line that says what to do
    ├── SandboxUsageError        bad input (name, laptop number, missing command)
    ├── SandboxNotUpError        the instance is not up (run `tp sandbox up`)
    └── SandboxStartError        `up` failed midway; everything it made was undone

The front (`tp_jupyter.cli`) catches `SandboxError` next to its own `TpError`;
the sandbox never imports the front.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error the sandbox tooling raises on purpose."""


class SandboxUsageError(SandboxError):
    """A mistake in the arguments; the message says how to fix it."""


class SandboxNotUpError(SandboxError):
    """The instance is not running."""


class SandboxStartError(SandboxError):
    """`tp sandbox up` failed; what it made has been removed again."""

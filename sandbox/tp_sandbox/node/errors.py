"""Errors of the sandbox node agent (kubelet).

    NodeError                    base: one line that says what to do
    ├── NodeUsageError           bad command line (kubeconfig missing, bad name)
    ├── ApiError                 the API server refused or failed a request
    │   ├── ApiNotFound          404: the object is gone
    │   ├── ApiConflict          409: changed or exists already
    │   └── ApiGone              410: a watch's resourceVersion is too old (list again)
    ├── PodSetupError            a pod's network, volumes or config could not be prepared
    │   └── ConfigRefError       a referenced ConfigMap/Secret/key is missing
    └── ImagePullError           the image is not in the sandbox's catalog

`ApiException` of the official client is translated once, in `kubeapi` (the adapter
of the kubelet, kube-proxy and cluster DNS alike), and chained with `from`; the rest
of the node code never sees it.
"""

from __future__ import annotations


class NodeError(Exception):
    """Base of every error the node agent raises on purpose."""


class NodeUsageError(NodeError):
    """A mistake on the command line; the message says how to fix it."""


class ApiError(NodeError):
    """The API server answered with an error (or could not be reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class ApiNotFound(ApiError):
    """The object does not exist (any more)."""


class ApiConflict(ApiError):
    """The object exists already or changed under us."""


class ApiGone(ApiError):
    """A watch's resourceVersion is too old (410 Gone): list again."""


class PodSetupError(NodeError):
    """A pod could not be prepared (network namespace, volumes, token...)."""


class ConfigRefError(PodSetupError):
    """A ConfigMap, Secret or key a pod needs is missing (CreateContainerConfigError)."""


class ImagePullError(NodeError):
    """The image is unknown to the sandbox's image catalog."""

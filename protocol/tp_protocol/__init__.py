"""What every tp-jupyter component shares: the wire protocol and the settings.

This package is a leaf: it imports no other tp-jupyter package, so the front
(`tp_jupyter`), the workstation daemon (`tp_daemon`), the cluster images
(`tp_cluster`) and the sandbox (`tp_sandbox`) may all depend on it.
"""

VERSION = "0.1.0"

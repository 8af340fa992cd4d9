"""tp-jupyter's front: the `tp` CLI, the `%tp` magics and the plain-Python API.

The front reaches the cluster only through the workstation daemon.
"""

from tp_protocol import VERSION

__version__ = VERSION

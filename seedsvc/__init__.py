"""seedsvc: stable, topology-aware seed discovery for gossip-based stateful systems on Kubernetes.

The public Python API lives in :mod:`seedsvc.api`; the names below are re-exported for convenience.
"""

from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Policy, select

__all__ = ["Endpoint", "Identity", "Policy", "select"]
__version__ = "0.1.0"

"""seedsvc: stable, topology-aware seed discovery for gossip-based stateful systems on Kubernetes.

The Python API is :mod:`seedsvc.api`; its main names are re-exported here.
"""

from seedsvc.api import SeedsUnavailable, current_seeds, current_seeds_sync, settings_from_env, watch_seeds
from seedsvc.records import Endpoint, Identity
from seedsvc.seedlist import SeedList
from seedsvc.selection import Policy, select

__all__ = [
    "Endpoint",
    "Identity",
    "Policy",
    "SeedList",
    "SeedsUnavailable",
    "current_seeds",
    "current_seeds_sync",
    "select",
    "settings_from_env",
    "watch_seeds",
]
__version__ = "0.1.0"

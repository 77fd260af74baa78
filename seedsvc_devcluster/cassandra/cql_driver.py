"""The Python driver, configured for nodes of this harness."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seedsvc_devcluster.cassandra.cassandra_yaml import NATIVE_PORT
from seedsvc_devcluster.cassandra.errors import DriverUnavailable
from seedsvc_devcluster.cassandra.release import DEFAULT_VERSION, release_for


def driver(contact_points: Sequence[str], *, version: str = DEFAULT_VERSION) -> Any:
    """A driver ``Cluster`` (not yet connected) for nodes of this harness.

    Raises :class:`DriverUnavailable` with the fix if the driver cannot be imported.
    """
    try:
        from cassandra.cluster import Cluster, ExecutionProfile
        from cassandra.policies import RoundRobinPolicy
    except ImportError as exc:  # e.g. not installed, or no usable event-loop reactor
        raise DriverUnavailable(f"cassandra-driver is unusable ({exc}); run: pip install -e '.[test]'") from None
    # An explicit load-balancing policy: without one the driver emits a warning, which this
    # project's pytest configuration turns into an error.
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=30)
    return Cluster(
        contact_points=list(contact_points),
        port=NATIVE_PORT,
        execution_profiles={"default": profile},  # cassandra.cluster.EXEC_PROFILE_DEFAULT
        protocol_version=release_for(version).protocol_version,
        connect_timeout=10,
    )

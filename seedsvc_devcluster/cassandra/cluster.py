"""Several Cassandra nodes forming one ring: started one after another, stopped together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seedsvc_devcluster.cassandra.node import STOP_TIMEOUT_S, CassandraNode


class CassandraCluster:
    """Several nodes on ``addresses`` under ``base_dir``, seeded from ``seeds`` (default: the first).

    :meth:`start` starts them one after another, each waiting for CQL before the next one starts:
    the first node founds the cluster, the others bootstrap into it. Extra keyword arguments go to
    every :class:`CassandraNode`.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        base_dir: Path | str,
        *,
        seeds: Sequence[str] | None = None,
        **node_kwargs: Any,
    ) -> None:
        seed_list = list(seeds or addresses[:1])
        self.nodes = [CassandraNode(addr, Path(base_dir) / addr, seeds=seed_list, **node_kwargs) for addr in addresses]

    def __enter__(self) -> CassandraCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_per_node: float = 180.0) -> None:
        try:
            for node in self.nodes:
                node.start()
                node.wait_for_cql(timeout_per_node)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop all nodes together (each drains in parallel), killing any still running after ``timeout``."""
        for node in self.nodes:
            node.terminate()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node.stop(max(0.0, deadline - time.monotonic()))

    @property
    def addresses(self) -> list[str]:
        return [node.address for node in self.nodes]

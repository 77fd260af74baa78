"""cassandra.yaml for a small test node: the version-dependent part of a node's configuration (pure text).

Cassandra 5.0 reads the key names with units (``commitlog_sync_period: 10000ms``); older lines use
the ``_in_ms``/``_in_mb`` names, so a second release line renders its own keys here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

STORAGE_PORT: Final = 7000
NATIVE_PORT: Final = 9042
SIMPLE_SEED_PROVIDER: Final = "org.apache.cassandra.locator.SimpleSeedProvider"

# 4.0 refuses the 4.1+ names with units ("Invalid yaml. Please remove properties ..."): the same
# settings under the names it knows. The values below are in ms and MiB, the units these names imply.
LEGACY_KEYS: Final[Mapping[str, str]] = {
    "commitlog_sync_period": "commitlog_sync_period_in_ms",
    "commitlog_segment_size": "commitlog_segment_size_in_mb",
    "memtable_heap_space": "memtable_heap_space_in_mb",
    "memtable_offheap_space": "memtable_offheap_space_in_mb",
    "key_cache_size": "key_cache_size_in_mb",
    "counter_cache_size": "counter_cache_size_in_mb",
    "file_cache_size": "file_cache_size_in_mb",
    "prepared_statements_cache_size": "prepared_statements_cache_size_mb",
}


def render_cassandra_yaml(
    *,
    cluster_name: str,
    address: str,
    data_dir: Path,
    seed_provider_class: str,
    seed_provider_params: Mapping[str, str],
    num_tokens: int,
    snitch: str,
    overrides: Mapping[str, Any],
    legacy_keys: bool = False,
) -> str:
    """A minimal cassandra.yaml for a small test node; ``overrides`` replace or add top-level keys.

    Key names with units (4.1+), or the 4.0 names when ``legacy_keys`` (see :data:`LEGACY_KEYS`).
    """
    import yaml  # test dependency (PyYAML); imported here so `fetch` works without it

    config: dict[str, Any] = {
        "cluster_name": cluster_name,
        "num_tokens": num_tokens,
        # Balanced token allocation instead of random tokens, which matters with few vnodes.
        "allocate_tokens_for_local_replication_factor": 3,
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "seed_provider": [{"class_name": seed_provider_class, "parameters": [dict(seed_provider_params)]}],
        "listen_address": address,
        "rpc_address": address,
        "storage_port": STORAGE_PORT,
        "native_transport_port": NATIVE_PORT,
        "start_native_transport": True,
        "endpoint_snitch": snitch,
        "authenticator": "AllowAllAuthenticator",
        "authorizer": "AllowAllAuthorizer",
        "role_manager": "CassandraRoleManager",
        "network_authorizer": "AllowAllNetworkAuthorizer",
        "data_file_directories": [str(data_dir / "data")],
        "commitlog_directory": str(data_dir / "commitlog"),
        "hints_directory": str(data_dir / "hints"),
        "saved_caches_directory": str(data_dir / "saved_caches"),
        "cdc_raw_directory": str(data_dir / "cdc_raw"),
        "commitlog_sync": "periodic",
        "commitlog_sync_period": "10000ms",
        # Small segments: fewer bytes pre-allocated per node, and tests never write big mutations.
        "commitlog_segment_size": "8MiB",
        "disk_failure_policy": "stop",
        "commit_failure_policy": "stop",
        # Keep memory small: several nodes share a 2-core, few-GiB test machine.
        "memtable_heap_space": "64MiB",
        "memtable_offheap_space": "64MiB",
        "key_cache_size": "8MiB",
        "counter_cache_size": "0MiB",
        "file_cache_size": "32MiB",
        "prepared_statements_cache_size": "4MiB",
        "concurrent_reads": 4,
        "concurrent_writes": 4,
        "concurrent_counter_writes": 4,
        "concurrent_compactors": 1,
        "hinted_handoff_enabled": True,
    }
    if legacy_keys:
        for new_name, old_name in LEGACY_KEYS.items():
            config[old_name] = int(str(config.pop(new_name)).rstrip("msMiB"))
    config.update(overrides)
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)

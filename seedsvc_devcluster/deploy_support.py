"""Helpers for tests/test_deploy.py: render the kustomize overlays in deploy/ with the harness-built
kubectl, and read the rendered objects (plain dicts, exactly what the API server would receive)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from seedsvc_devcluster.paths import DEPLOY_DIR, REPO_ROOT

REPO = REPO_ROOT
DEPLOY = DEPLOY_DIR
OVERLAYS_DIR = DEPLOY / "overlays"
ENTRYPOINT = DEPLOY / "images" / "cassandra-entrypoint.sh"
CASSANDRA_DOCKERFILE = DEPLOY / "images" / "cassandra.Dockerfile"
SIDECAR_DOCKERFILE = DEPLOY / "images" / "sidecar.Dockerfile"

EXPECTED_OVERLAYS = ("daemonset", "deployment-emptydir", "dns-only", "endpoints-fallback", "relay", "statefulset")
WORKLOAD_KINDS = ("StatefulSet", "DaemonSet", "Deployment")
SIDECAR = "seedsvc"
CASSANDRA = "cassandra"
KUBECTL_TIMEOUT_S = 120.0
"""Bound for one kubectl call; rendering takes well under a second, a server dry run a few."""

Obj = dict[str, Any]


def overlay_names() -> list[str]:
    return sorted(p.name for p in OVERLAYS_DIR.iterdir() if (p / "kustomization.yaml").is_file())


def run_kubectl(
    kubectl: Path, args: list[str], *, stdin: str | None = None, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run(
        [str(kubectl), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT_S,
        env=env,
        check=False,
    )


def kustomize(kubectl: Path, directory: Path) -> str:
    done = run_kubectl(kubectl, ["kustomize", str(directory)])
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def in_namespace(
    kubectl: Path, overlay: str, namespace: str, workdir: Path, *, images: Mapping[str, str] | None = None
) -> str:
    """The overlay rendered for `namespace`, the way a user retargets it: a kustomization that uses the
    overlay as its resource and sets `namespace:` (kustomize also rewrites RoleBinding subjects).

    ``images`` maps an image name of the manifests (``seedsvc/sidecar``) to the reference to run
    instead (``localhost/seedsvc/sidecar:0.1.0``), as a user points the overlay at their registry.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(OVERLAYS_DIR / overlay, workdir)
    replaced = "".join(
        f"  - name: {name}\n    newName: {new_name}\n    newTag: {tag}\n"
        for name, (new_name, tag) in ((n, split_reference(r)) for n, r in (images or {}).items())
    )
    (workdir / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {namespace}\nresources:\n  - {relative}\n" + (f"images:\n{replaced}" if replaced else "")
    )
    return kustomize(kubectl, workdir)


def split_reference(reference: str) -> tuple[str, str]:
    """``registry/name:tag`` -> (``registry/name``, ``tag``); a port's colon is not a tag's."""
    name, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        raise ValueError(f"image reference {reference!r} has no tag")
    return name, tag


def parse(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def dump(objects: list[Obj]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False)


def of_kind(objects: list[Obj], *kinds: str) -> list[Obj]:
    return [o for o in objects if o["kind"] in kinds]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
    return found[0]


def workloads(objects: list[Obj]) -> list[Obj]:
    """The Cassandra workloads (the relay overlay's seedsvc-relay Deployment is not one)."""
    return [
        o
        for o in of_kind(objects, *WORKLOAD_KINDS)
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == CASSANDRA
    ]


def pod_spec(workload: Obj) -> Obj:
    return workload["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def all_containers(spec: Obj) -> Iterator[Obj]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def container(spec: Obj, name: str) -> Obj:
    found = [c for c in all_containers(spec) if c["name"] == name]
    assert len(found) == 1, f"expected one container {name!r}, found {len(found)}"
    return found[0]


def literal_env(c: Obj) -> dict[str, str]:
    """Env entries with a literal value (downward-API entries are left out)."""
    return {e["name"]: e["value"] for e in c.get("env") or [] if "value" in e}


_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def resolve_env(c: Obj, downward: Mapping[str, str]) -> dict[str, str]:
    """The container's environment as the kubelet computes it: downward-API fields from `downward`
    (keyed by fieldPath), $(VAR) expanded from earlier entries only, as Kubernetes does."""
    env: dict[str, str] = {}
    for entry in c.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = _REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), entry["value"])
        else:
            field = entry["valueFrom"]["fieldRef"]["fieldPath"]
            env[entry["name"]] = downward[field]
    return env


def volume_mount_for(c: Obj, path: str) -> Obj | None:
    """The mount whose mountPath contains `path`, deepest first."""
    mounts = sorted(c.get("volumeMounts") or [], key=lambda m: len(m["mountPath"]), reverse=True)
    for mount in mounts:
        root = mount["mountPath"].rstrip("/") + "/"
        if path == mount["mountPath"] or path.startswith(root):
            return mount  # type: ignore[no-any-return]
    return None


# A condensed cassandra.yaml laid out as the 5.0 distribution's: comments, commented-out keys, the
# seed_provider block with indented comments, a column-0 comment right after it, and settings the
# entrypoint must leave alone (authentication, encryption).
CASSANDRA_YAML_TEMPLATE = """\

# Cassandra storage config YAML

# The name of the cluster. This is mainly used to prevent machines in
# one logical cluster from joining another.
cluster_name: 'Test Cluster'

num_tokens: 16

allocate_tokens_for_local_replication_factor: 3

authenticator:
  class_name : org.apache.cassandra.auth.PasswordAuthenticator

authorizer:
  class_name: CassandraAuthorizer

# any class that implements the SeedProvider interface and has a
# constructor that takes a Map<String, String> of parameters will do.
seed_provider:
  # Addresses of hosts that are deemed contact points.
  # Cassandra nodes use this list of hosts to find each other and learn
  # the topology of the ring.  You _must_ change this if you are running
  # multiple nodes!
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      # seeds is actually a comma-delimited list of addresses.
      # Ex: "<ip1>,<ip2>,<ip3>"
      - seeds: "127.0.0.1:7000"

# For workloads with more data than can fit in memory, Cassandra's
# bottleneck will be reads that need to fetch data from
# disk.
concurrent_reads: 32

# Setting listen_address to 0.0.0.0 is always wrong.
#
listen_address: localhost

# listen_interface: eth0
# listen_interface_prefer_ipv6: false

# broadcast_address: 1.2.3.4

rpc_address: localhost

# broadcast_rpc_address: 1.2.3.4

endpoint_snitch: SimpleSnitch

server_encryption_options:
  internode_encryption: none
  keystore: conf/.keystore
  keystore_password: cassandra
"""

CASSANDRA_RACKDC_TEMPLATE = "dc=dc1\nrack=rack1\n"

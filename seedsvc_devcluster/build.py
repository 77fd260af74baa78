"""Build the pinned control-plane binaries from seedsvc_devcluster/go and cache them.

Usage (from the repository root)::

    python3 -m seedsvc_devcluster.build          # build if needed, print the bin directory
    python3 -m seedsvc_devcluster.build pin      # regenerate go.mod/go.sum after editing versions.env

``seedsvc_devcluster/go/build.sh`` is the same entry point for the shell.

Binaries live in ``~/.cache/seedsvc/controlplane/<key>/bin/`` where ``key`` hashes everything that
decides their content (pins, go.mod, go.sum, the Go wrappers, the Go toolchain version, build flags),
so a change of pin builds a fresh set and a warm lookup costs one ``go env`` call.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from seedsvc_devcluster import paths, processes

REPO_ROOT = paths.REPO_ROOT
CONTROLPLANE_DIR = REPO_ROOT / "seedsvc_devcluster" / "go"
VERSIONS_FILE = CONTROLPLANE_DIR / "versions.env"

# -trimpath and -s -w drop paths, the symbol table and DWARF: binaries shrink by about a third and do
# not depend on where the checkout lives. CGO is off so no C toolchain is needed and the binaries are
# static.
GO_BUILD_FLAGS: tuple[str, ...] = ("-trimpath",)
LINKER_FLAGS = "-s -w"
GO_BUILD_ENV: dict[str, str] = {"CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}

# Generous bound for a cold build on 2 cores (downloads plus compiling Kubernetes); a hung build
# must still end.
BUILD_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class SourcePatch:
    """A one-line change applied at build time through `go build -overlay`, never committed as code.

    The patched file is written into the build cache, so no upstream source lives in this repository.
    ``old`` must occur exactly once; when an upgrade moves the code, the build fails loudly.
    """

    module: str
    file: str
    old: str
    new: str


# The API server rejects loopback addresses in Endpoints and EndpointSlices (ValidateEndpointIP in
# pkg/apis/core/validation). The test environment gives pods 127.0.10.x addresses because the only
# network available is loopback, so that single check is disabled; every other validation is upstream.
PATCHES: tuple[SourcePatch, ...] = (
    SourcePatch(
        module="k8s.io/kubernetes",
        file="pkg/apis/core/validation/validation.go",
        old="if ip.IsLoopback() {",
        new="if ip.IsLoopback() && false { // seedsvc test build: pods have 127.0.10.x IPs",
    ),
    # The node mode runs three kubelets on one 2-core machine, and the deploy/ manifests ask for 2.1 CPUs
    # per Cassandra pod (Guaranteed QoS, as in production): a kubelet reporting the real core count
    # could run none of them. SEEDSVC_NODE_MILLICPU, when set, is the CPU capacity the kubelet reports
    # instead; the containers' CFS quotas still hold them to their limits. Unset: upstream behaviour.
    SourcePatch(
        module="k8s.io/kubernetes",
        file="pkg/kubelet/cadvisor/util.go",
        old='import (\n\t"strings"\n',
        new='import (\n\t"os"\n\t"strconv"\n\t"strings"\n',
    ),
    SourcePatch(
        module="k8s.io/kubernetes",
        file="pkg/kubelet/cadvisor/util.go",
        old="int64(info.NumCores*1000),",
        new=(
            'func() int64 { if v, err := strconv.ParseInt(os.Getenv("SEEDSVC_NODE_MILLICPU"), 10, 64); '
            "err == nil && v > 0 { return v }; return int64(info.NumCores * 1000) }(),"
        ),
    ),
)


class BuildError(RuntimeError):
    """A prerequisite is missing or the Go build failed; the message says which and how to fix it."""


@dataclass(frozen=True)
class GoModule:
    """One Go module under seedsvc_devcluster/go that builds some binaries from one upstream module.

    The three upstreams get separate modules because their dependency graphs disagree (etcd server,
    Kubernetes and CoreDNS each pin different grpc/otel/client-go versions).
    """

    directory: str
    upstream: str
    version_key: str
    binaries: tuple[str, ...]
    # Build tags that leave out plugins the local cluster never uses (containerd's devmapper and ZFS
    # snapshotters); btrfs needs cgo and is left out by CGO_ENABLED=0 already.
    tags: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return CONTROLPLANE_DIR / self.directory


MODULES: tuple[GoModule, ...] = (
    GoModule("etcd", "go.etcd.io/etcd/server/v3", "ETCD_VERSION", ("etcd",)),
    GoModule(
        "kubernetes",
        "k8s.io/kubernetes",
        "KUBERNETES_VERSION",
        ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet"),
    ),
    GoModule("coredns", "github.com/coredns/coredns", "COREDNS_VERSION", ("coredns",)),
    GoModule(
        "containerd",
        "github.com/containerd/containerd/v2",
        "CONTAINERD_VERSION",
        ("containerd", "containerd-shim-runc-v2", "ctr"),
        tags=("no_devmapper", "no_zfs"),
    ),
)

BINARIES: tuple[str, ...] = tuple(name for module in MODULES for name in module.binaries)


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """Parse ``KEY=value`` lines; ``#`` starts a comment. Shell-compatible on purpose."""
    versions: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def cache_root() -> Path:
    """Where built binaries are cached: ``paths.cache_dir("controlplane")``."""
    return paths.cache_dir("controlplane")


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "the Go toolchain is required to build the test control plane (seedsvc_devcluster/go) "
            "but `go` is not on PATH; install Go >= 1.26 (e.g. apt-get install golang-go or the "
            "official tarball) and retry"
        )
    return go


def _run_go(args: list[str], *, cwd: Path, timeout: float, extra_env: dict[str, str] | None = None) -> str:
    env = {**os.environ, **(extra_env or {})}
    try:
        done = subprocess.run(
            [_go(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"`go {' '.join(args)}` in {cwd} did not finish within {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise BuildError(f"`go {' '.join(args)}` in {cwd} failed ({done.returncode}):\n{done.stderr[-8000:]}")
    return done.stdout


def build_key() -> str:
    """Hash of every input that decides the binaries' content."""
    digest = hashlib.sha256()
    inputs = [("versions.env", VERSIONS_FILE)]
    for module in MODULES:
        files = [module.path / "go.mod", module.path / "go.sum", *sorted(module.path.rglob("*.go"))]
        inputs += [(str(path.relative_to(CONTROLPLANE_DIR)), path) for path in files]
    for label, path in inputs:
        digest.update(label.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    toolchain = _run_go(["env", "GOVERSION", "GOOS", "GOARCH"], cwd=CONTROLPLANE_DIR, timeout=60)
    digest.update(toolchain.encode())
    patches = [[p.module, p.file, p.old, p.new] for p in PATCHES]
    tags = [[module.directory, *module.tags] for module in MODULES]
    versions = read_versions()
    linker = [ldflags(module, versions[module.version_key]) for module in MODULES]
    digest.update(json.dumps([GO_BUILD_FLAGS, sorted(GO_BUILD_ENV.items()), patches, tags, linker]).encode())
    return digest.hexdigest()[:20]


def ldflags(module: GoModule, version: str) -> str:
    """``-ldflags`` for one module: stripped, and Kubernetes binaries told their release (as upstream's
    build stamps it), so nodes and ``/version`` report v1.37.2 instead of v0.0.0-master."""
    flags = LINKER_FLAGS
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", version)
    if module.upstream == "k8s.io/kubernetes" and match:
        base = "k8s.io/component-base/version"
        flags += f" -X {base}.gitVersion={version} -X {base}.gitMajor={match[1]} -X {base}.gitMinor={match[2]}"
    return flags


def _complete(bin_dir: Path) -> bool:
    return all((bin_dir / name).is_file() for name in BINARIES)


def ensure_built(*, log: bool = True) -> Path:
    """Return the directory holding all control-plane binaries, building them first if needed."""
    key = build_key()
    bin_dir = cache_root() / key / "bin"
    if _complete(bin_dir):
        return bin_dir
    with processes.file_lock(cache_root() / f"{key}.lock"):
        if _complete(bin_dir):  # another process built it while we waited for the lock
            return bin_dir
        _build_into(bin_dir, log=log)
    return bin_dir


def _build_into(bin_dir: Path, *, log: bool) -> None:
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="bin.tmp-", dir=bin_dir.parent))
    started = time.monotonic()
    versions = read_versions()
    try:
        for module in MODULES:
            if log:
                print(f"[build] {module.directory}: {', '.join(module.binaries)}", file=sys.stderr, flush=True)
            modfile = _patched_modfile(module, staging.parent / "work")
            modfile_flags = [f"-modfile={modfile}"] if modfile else []
            tag_flags = [f"-tags={','.join(module.tags)}"] if module.tags else []
            _run_go(
                [
                    "build",
                    *GO_BUILD_FLAGS,
                    f"-ldflags={ldflags(module, versions[module.version_key])}",
                    *modfile_flags,
                    *tag_flags,
                    "-o",
                    str(staging) + "/",
                    "./cmd/...",
                ],
                cwd=module.path,
                timeout=BUILD_TIMEOUT_S,
                extra_env=GO_BUILD_ENV,
            )
        # Rename last so a half-finished build is never mistaken for a complete one.
        shutil.rmtree(bin_dir, ignore_errors=True)
        staging.rename(bin_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _rmtree(staging.parent / "work")
    if log:
        print(f"[build] done in {time.monotonic() - started:.0f}s -> {bin_dir}", file=sys.stderr, flush=True)


def _patched_modfile(module: GoModule, workdir: Path) -> Path | None:
    """Prepare a patched copy of `module.upstream` and a go.mod that points at it; None if no patches.

    `go build -overlay` refuses files inside GOMODCACHE, so the upstream module is copied as hard links
    (instant, no extra space) and only the patched files are real copies. The repository's go.mod and
    go.sum stay untouched: the build uses `-modfile` with a generated copy that adds one replace line.
    """
    patches = [p for p in PATCHES if module.upstream == p.module]
    if not patches:
        return None
    _run_go(["mod", "download", module.upstream], cwd=module.path, timeout=BUILD_TIMEOUT_S)
    listing = _run_go(["list", "-m", "-json", module.upstream], cwd=module.path, timeout=300)
    source_root = Path(json.loads(listing)["Dir"])
    patched_root = workdir / "src" / module.directory
    _rmtree(patched_root)
    shutil.copytree(source_root, patched_root, copy_function=_link_or_copy)
    for patch in patches:
        target = patched_root / patch.file
        text = target.read_text()
        if text.count(patch.old) != 1:
            raise BuildError(f"patch for {patch.module}/{patch.file} no longer applies: {patch.old!r}")
        target.parent.chmod(0o755)
        target.unlink()  # break the hard link so the module cache keeps the original
        target.write_text(text.replace(patch.old, patch.new))
    modfile = workdir / f"{module.directory}.go.mod"
    gomod = (module.path / "go.mod").read_text()
    modfile.write_text(f"{gomod}\nreplace {module.upstream} => {patched_root}\n")
    shutil.copyfile(module.path / "go.sum", modfile.with_suffix(".sum"))
    return modfile


def _link_or_copy(source: str, destination: str) -> None:
    """Hard link where possible; copy when the cache and GOMODCACHE are on different filesystems."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _rmtree(path: Path) -> None:
    """Remove a tree whose directories the module cache made read-only (files are never chmod-ed:
    they are hard links shared with the module cache)."""
    if not path.exists():
        return
    for directory in [path, *(p for p in path.rglob("*") if p.is_dir() and not p.is_symlink())]:
        directory.chmod(0o755)
    shutil.rmtree(path)


# --- pinning ------------------------------------------------------------------------------------------

_STAGING_REPLACE = re.compile(r"^\s*(k8s\.io/[A-Za-z0-9._-]+)\s*=>\s*\./staging/src/(\S+)\s*$")


def upstream_gomod(module: str, version: str) -> tuple[Path, str]:
    """Path of the go.mod the module proxy serves for module@version, and its go directive.

    `go list -m` fetches only the .mod file, not the (large) module zip.
    """
    with tempfile.TemporaryDirectory() as scratch:
        out = _run_go(["list", "-m", "-json", f"{module}@{version}"], cwd=Path(scratch), timeout=300)
    info = json.loads(out)
    return Path(info["GoMod"]), str(info.get("GoVersion", ""))


def staging_replacements(kubernetes_gomod: str, kubernetes_version: str) -> dict[str, str]:
    """Map each `k8s.io/foo => ./staging/src/k8s.io/foo` line to `k8s.io/foo v0.MINOR.PATCH`.

    k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at its own tree; a module
    that depends on it must replace them with the published staging tags, which are v0.X.Y for v1.X.Y.
    """
    match = re.fullmatch(r"v1\.(\d+\.\d+(?:-[0-9A-Za-z.-]+)?)", kubernetes_version)
    if match is None:
        raise BuildError(f"unexpected Kubernetes version {kubernetes_version!r}; expected v1.X.Y")
    staging_version = f"v0.{match.group(1)}"
    replacements: dict[str, str] = {}
    for line in kubernetes_gomod.splitlines():
        found = _STAGING_REPLACE.match(line)
        if found and found.group(1) == found.group(2):
            replacements[found.group(1)] = staging_version
    if not replacements:
        raise BuildError("found no staging replace lines in the k8s.io/kubernetes go.mod")
    return replacements


def pin() -> None:
    """Regenerate each module's go.mod (with the staging replaces) and go.sum from versions.env."""
    versions = read_versions()
    for module in MODULES:
        version = versions[module.version_key]
        gomod_path, go_directive = upstream_gomod(module.upstream, version)
        lines = [
            "// Generated by `python3 -m seedsvc_devcluster.build pin` from seedsvc_devcluster/go/versions.env.",
            "// Do not edit by hand.",
            f"module seedsvc.test/controlplane/{module.directory}",
            "",
            f"go {go_directive or '1.26.0'}",
            "",
            f"require {module.upstream} {version}",
        ]
        if module.upstream == "k8s.io/kubernetes":
            replacements = staging_replacements(gomod_path.read_text(), version)
            lines += ["", "replace ("]
            lines += [f"\t{path} => {path} {ver}" for path, ver in sorted(replacements.items())]
            lines += [")"]
        (module.path / "go.mod").write_text("\n".join(lines) + "\n")
        (module.path / "go.sum").unlink(missing_ok=True)
        print(f"[pin] {module.directory}: go mod tidy", file=sys.stderr, flush=True)
        _run_go(["mod", "tidy"], cwd=module.path, timeout=BUILD_TIMEOUT_S, extra_env={"GOFLAGS": "-mod=mod"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m seedsvc_devcluster.build", description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="build", choices=["build", "pin", "key"])
    args = parser.parse_args(argv)
    try:
        if args.command == "pin":
            pin()
        elif args.command == "key":
            print(build_key())
        else:
            print(ensure_built())
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

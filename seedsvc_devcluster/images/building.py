"""Build the images (or find them cached) and export each final one as an OCI archive.

Archives live in ``~/.cache/seedsvc/images/<key>/<name>.tar``. A warm call hashes the inputs, finds
the archives and returns without starting buildah; a cold one takes the store's lock, builds what is
missing bottom-up (reusing bases still in the store under their key tag), exports into a temporary file
and renames it into place, so an archive that exists is complete.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from seedsvc_devcluster import paths, processes
from seedsvc_devcluster.images import cache_key, cassandra_standin, minbase, oci_archive, recipes
from seedsvc_devcluster.images.store import ImageBuildError, Store, require, session

PACKAGE_DIR = Path(__file__).resolve().parent
PAUSE_SOURCE = PACKAGE_DIR / "pause.c"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# runc fails a RUN whose rlimits exceed the caller's hard limits (buildah's defaults do, on machines with
# a low nofile limit), so each RUN gets the caller's own limits, capped where more is pointless.
RLIMITS = {"nofile": (resource.RLIMIT_NOFILE, 65536), "nproc": (resource.RLIMIT_NPROC, 32768)}


def ulimits() -> list[str]:
    """``--ulimit`` values: the caller's hard limits, capped, as both soft and hard limit."""
    values = []
    for name, (which, cap) in RLIMITS.items():
        hard = resource.getrlimit(which)[1]
        limit = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        values.append(f"{name}={limit}:{limit}")
    return values


Stager = Callable[[str, Path], None]


@dataclass(frozen=True)
class StandinRecipe:
    """How the Cassandra stand-in base's build context is made.

    ``stage(version, context)`` fills ``context`` (a ``Containerfile`` taking ``ARG JAVA_BASE``, plus its
    files); ``inputs`` are the files whose content decides what it writes, hashed into the key instead
    of the staged output so that a warm lookup never stages anything.
    """

    stage: Stager
    inputs: tuple[Path, ...]


def default_standin() -> StandinRecipe:
    """The project's stand-in (seedsvc_devcluster/images/cassandra_standin)."""
    return StandinRecipe(stage=cassandra_standin.stage_context, inputs=cassandra_standin.staging_inputs())


@dataclass(frozen=True)
class BuiltImage:
    name: str
    reference: str
    archive: Path


@dataclass(frozen=True)
class Images:
    """The exported images by name (``pause``, ``sidecar``, ``cassandra``; those that were asked for)."""

    by_name: Mapping[str, BuiltImage]

    def __getitem__(self, name: str) -> BuiltImage:
        return self.by_name[name]


@dataclass
class Plan:
    """Every image's key and reference, computed on demand from the checkout and the recipes."""

    repo_root: Path
    standin: Callable[[], StandinRecipe]

    @cached_property
    def standin_recipe(self) -> StandinRecipe:
        # Only a Cassandra build imports the stand-in package; pause and sidecar never need it.
        return self.standin()

    @cached_property
    def minbase_ref(self) -> str:
        key = cache_key.digest("minbase", recipes.SUITE, recipes.VARIANT, recipes.MIRROR)
        return f"{recipes.MINBASE_REPO}:{key}"

    @cached_property
    def python_ref(self) -> str:
        return f"{recipes.PYTHON_REPO}:{cache_key.digest(recipes.python_containerfile(self.minbase_ref))}"

    @cached_property
    def java_ref(self) -> str:
        return f"{recipes.JAVA_REPO}:{cache_key.digest(recipes.java_containerfile(self.minbase_ref))}"

    @cached_property
    def standin_key(self) -> str:
        inputs = self.standin_recipe.inputs
        return cache_key.digest(self.java_ref, recipes.CASSANDRA_VERSION, cache_key.paths_digest(inputs))

    @cached_property
    def standin_ref(self) -> str:
        return f"localhost/seedsvc-base/cassandra-standin:{self.standin_key}"

    def _dockerfile_key(self, build: recipes.DockerfileBuild, build_args: Mapping[str, str]) -> str:
        dockerfile = self.repo_root / build.dockerfile
        ignorefile = dockerfile.with_name(dockerfile.name + ".dockerignore")
        return cache_key.digest(
            build.reference,
            dockerfile.read_bytes(),
            ignorefile.read_bytes(),
            cache_key.context_digest(self.repo_root, ignorefile),
            *sorted(f"{k}={v}" for k, v in build_args.items()),
        )

    def build_args(self, name: str) -> dict[str, str]:
        if name == "sidecar":
            return {"PYTHON_IMAGE": self.python_ref}
        return {"CASSANDRA_IMAGE": self.standin_ref, "MAVEN_IMAGE": self.java_ref}

    def key(self, name: str) -> str:
        if name == "pause":
            compiler = subprocess.run([require("gcc", "gcc"), "--version"], capture_output=True, text=True, check=True)
            return cache_key.digest(
                recipes.PAUSE_REF,
                PAUSE_SOURCE.read_bytes(),
                *recipes.PAUSE_CFLAGS,
                compiler.stdout.splitlines()[0],
                recipes.pause_containerfile(),
            )
        build = recipes.SIDECAR if name == "sidecar" else recipes.CASSANDRA
        return self._dockerfile_key(build, self.build_args(name))


def reference(name: str) -> str:
    return {"pause": recipes.PAUSE_REF, "sidecar": recipes.SIDECAR_REF, "cassandra": recipes.CASSANDRA_REF}[name]


def cache_root() -> Path:
    return paths.cache_dir("images")


def ensure_images(
    names: Iterable[str] = recipes.FINAL_NAMES,
    *,
    standin: Callable[[], StandinRecipe] = default_standin,
    root: Path | None = None,
    log: bool = True,
) -> Images:
    """The OCI archives of ``names``, building whatever is missing first."""
    wanted: list[str] = [name for name in recipes.FINAL_NAMES if name in set(names)]
    unknown = sorted(set(names) - set(recipes.FINAL_NAMES))
    if unknown:
        raise ValueError(f"unknown image {unknown[0]!r}; choose from {', '.join(recipes.FINAL_NAMES)}")
    cache = root or cache_root()
    plan = Plan(repo_root=paths.REPO_ROOT, standin=standin)
    images = {name: BuiltImage(name, reference(name), cache / plan.key(name) / f"{name}.tar") for name in wanted}
    missing = [image for image in images.values() if not image.archive.is_file()]
    if missing:
        with processes.file_lock(cache / "store.lock"), session(cache / "storage") as store:
            logfile = cache / "logs" / f"build-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
            logfile.parent.mkdir(parents=True, exist_ok=True)
            builder = _Builder(store=store, plan=plan, log=logfile, verbose=log)
            for image in missing:
                if not image.archive.is_file():  # another process may have built it meanwhile
                    builder.build_and_export(image)
            # A rebuilt image takes its tag from the previous one, which is left untagged: drop those.
            store.run(["rmi", "--prune"], log=logfile)
    return Images(images)


@dataclass
class _Builder:
    store: Store
    plan: Plan
    log: Path
    verbose: bool

    def say(self, message: str) -> None:
        if self.verbose:
            print(f"[images] {message} (log: {self.log})", file=sys.stderr, flush=True)

    def _build(
        self,
        *,
        containerfile: Path,
        context: Path,
        tags: Iterable[str],
        network: bool,
        build_args: Mapping[str, str] | None = None,
        volumes: Iterable[str] = (),
        ignorefile: Path | None = None,
    ) -> None:
        args = [
            "build",
            "--isolation=oci",
            "--pull=never",
            f"--network={'host' if network else 'none'}",
            f"--file={containerfile}",
        ]
        args += [f"--ulimit={limit}" for limit in ulimits()]
        args += [f"--build-arg={k}={v}" for k, v in (build_args or {}).items()]
        args += [f"--volume={volume}" for volume in volumes]
        args += [f"--tag={tag}" for tag in tags]
        if ignorefile is not None:
            args.append(f"--ignorefile={ignorefile}")
        self.store.run([*args, str(context)], log=self.log)

    def _generated(
        self, reference: str, containerfile: str, *, network: bool, files: Mapping[str, Path] | None = None
    ) -> None:
        context = Path(tempfile.mkdtemp(prefix="context-", dir=self.store.tmpdir))
        try:
            (context / "Containerfile").write_text(containerfile)
            for name, source in (files or {}).items():
                shutil.copy2(source, context / name)
            self._build(containerfile=context / "Containerfile", context=context, tags=[reference], network=network)
        finally:
            shutil.rmtree(context, ignore_errors=True)

    def minbase(self) -> str:
        ref = self.plan.minbase_ref
        if not self.store.has_image(ref):
            self.say(f"debootstrap {recipes.SUITE} ({recipes.VARIANT}) -> {ref}")
            minbase.build(self.store, ref, log=self.log)
        return ref

    def python(self) -> str:
        ref = self.plan.python_ref
        if not self.store.has_image(ref):
            containerfile = recipes.python_containerfile(self.minbase())
            self.say(f"python base -> {ref}")
            self._generated(ref, containerfile, network=True)
        return ref

    def java(self) -> str:
        ref = self.plan.java_ref
        if not self.store.has_image(ref):
            containerfile = recipes.java_containerfile(self.minbase())
            self.say(f"java base -> {ref}")
            self._generated(ref, containerfile, network=True)
        return ref

    def standin(self) -> str:
        ref = self.plan.standin_ref
        if not self.store.has_image(ref):
            java = self.java()
            recipe = self.plan.standin_recipe
            context = Path(tempfile.mkdtemp(prefix="standin-", dir=self.store.tmpdir))
            try:
                self.say(f"Cassandra stand-in base -> {recipes.STANDIN_BASE_REF}")
                recipe.stage(recipes.CASSANDRA_VERSION, context)
                self._build(
                    containerfile=context / "Containerfile",
                    context=context,
                    network=False,
                    tags=[ref, recipes.STANDIN_BASE_REF],
                    build_args={"JAVA_BASE": java},
                )
            finally:
                shutil.rmtree(context, ignore_errors=True)
        return ref

    def pause(self, reference: str) -> None:
        work = Path(tempfile.mkdtemp(prefix="pause-", dir=self.store.tmpdir))
        try:
            binary = work / "pause"
            subprocess.run(
                [require("gcc", "gcc"), *recipes.PAUSE_CFLAGS, "-o", str(binary), str(PAUSE_SOURCE)],
                check=True,
                capture_output=True,
                timeout=300,
            )
            self._generated(reference, recipes.pause_containerfile(), network=False, files={"pause": binary})
        except subprocess.CalledProcessError as exc:
            raise ImageBuildError(f"gcc -static failed on {PAUSE_SOURCE}:\n{exc.stderr.decode()[-2000:]}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def dockerfile(self, build: recipes.DockerfileBuild) -> None:
        if build.name == "sidecar":
            self.python()
            # pip inside the build reaches PyPI through this machine's TLS set-up, so it needs the host's
            # CA bundle. Debian's pip reads the system bundle (no PIP_CERT needed, and the Dockerfile has
            # no ARG through which it could pass); mounting over a file the image already has leaves no
            # empty mount point behind in a layer, as a mounted /etc/pip.conf would.
            volumes = [f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        else:
            self.java()
            self.standin()
            # Maven resolves its plugins from the host's warm ~/.m2 (filled by `make prerequisites`), so
            # the shim stage builds with no network at all.
            volumes = [f"{Path.home() / '.m2'}:/root/.m2"]
        dockerfile = self.plan.repo_root / build.dockerfile
        self.say(f"{build.dockerfile} -> {build.reference}")
        self._build(
            containerfile=dockerfile,
            context=self.plan.repo_root,
            tags=[build.reference],
            network=build.network,
            build_args=self.plan.build_args(build.name),
            volumes=volumes,
            ignorefile=dockerfile.with_name(dockerfile.name + ".dockerignore"),
        )

    def build_and_export(self, image: BuiltImage) -> None:
        started = time.monotonic()
        if image.name == "pause":
            self.pause(image.reference)
        else:
            self.dockerfile(recipes.SIDECAR if image.name == "sidecar" else recipes.CASSANDRA)
        image.archive.parent.mkdir(parents=True, exist_ok=True)
        partial = image.archive.with_name(f".{image.name}.tar.partial-{os.getpid()}")
        try:
            self.store.run(
                ["push", "--quiet", image.reference, f"oci-archive:{partial}:{image.reference}"], log=self.log
            )
            oci_archive.read(partial)  # refuse to publish an archive that is not a valid layout
            partial.rename(image.archive)
        finally:
            partial.unlink(missing_ok=True)
        self.say(f"{image.name}: built and exported in {time.monotonic() - started:.0f}s")

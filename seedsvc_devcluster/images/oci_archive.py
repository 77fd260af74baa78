"""Read and check an OCI image archive (an image layout in one tar, what ``ctr images import`` takes).

https://github.com/opencontainers/image-spec/blob/main/image-layout.md: ``oci-layout``, ``index.json``
and content-addressed ``blobs/<alg>/<hex>``; every blob's digest must match its bytes.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"


class InvalidArchive(ValueError):
    """The file is not a complete OCI image layout; the message says what is wrong."""


@dataclass(frozen=True)
class OciImage:
    ref_name: str | None
    manifest: dict[str, Any]
    config: dict[str, Any]
    layer_digests: tuple[str, ...]

    @property
    def size_bytes(self) -> int:
        """Compressed size of the layers as stored in the archive."""
        return sum(int(layer["size"]) for layer in self.manifest["layers"])


def _blob_name(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise InvalidArchive(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    try:
        handle = archive.extractfile(name)
    except KeyError:
        handle = None
    if handle is None:
        raise InvalidArchive(f"{name} is missing")
    return handle.read()


def _checked_blob(archive: tarfile.TarFile, digest: str, size: int) -> bytes:
    data = _member(archive, _blob_name(digest))
    if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise InvalidArchive(f"blob {digest} does not match its digest or size")
    return data


def read(path: Path) -> tuple[OciImage, ...]:
    """The images an archive holds, after checking every blob against its digest."""
    try:
        with tarfile.open(path) as archive:
            layout = json.loads(_member(archive, "oci-layout"))
            if "imageLayoutVersion" not in layout:
                raise InvalidArchive("oci-layout has no imageLayoutVersion")
            index = json.loads(_member(archive, "index.json"))
            images = []
            for entry in index.get("manifests", []):
                manifest = json.loads(_checked_blob(archive, entry["digest"], int(entry["size"])))
                config = json.loads(
                    _checked_blob(archive, manifest["config"]["digest"], int(manifest["config"]["size"]))
                )
                for layer in manifest["layers"]:
                    _checked_blob(archive, layer["digest"], int(layer["size"]))
                images.append(
                    OciImage(
                        ref_name=entry.get("annotations", {}).get(REF_NAME),
                        manifest=manifest,
                        config=config,
                        layer_digests=tuple(layer["digest"] for layer in manifest["layers"]),
                    )
                )
    except (tarfile.TarError, json.JSONDecodeError, KeyError) as exc:
        raise InvalidArchive(f"{path}: {exc}") from exc
    if not images:
        raise InvalidArchive(f"{path}: index.json lists no manifest")
    return tuple(images)

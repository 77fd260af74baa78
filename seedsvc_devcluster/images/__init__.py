"""Container images for the pod layer, built without Docker: debootstrap bases, buildah, OCI archives.

``ensure_images()`` returns the archive path and reference of ``pause``, ``sidecar`` and ``cassandra``
(building them on the first call); ``python -m seedsvc_devcluster.images build`` does the same from a
shell. See README.md in this directory.
"""

from seedsvc_devcluster.images.building import BuiltImage, Images, StandinRecipe, ensure_images
from seedsvc_devcluster.images.store import ImageBuildError

__all__ = ["BuiltImage", "ImageBuildError", "Images", "StandinRecipe", "ensure_images"]

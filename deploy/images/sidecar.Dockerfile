# syntax=docker/dockerfile:1
# The seedsvc sidecar: `seedsvc serve` as a non-root user on a read-only root filesystem.
#
# Build from the repository root (the context must contain pyproject.toml, seedsvc/ and sidecar/):
#   docker build -f deploy/images/sidecar.Dockerfile -t seedsvc/sidecar:0.1.0 .
#
# The base is pinned by an explicit version tag, not a digest: 3.11.15 on Debian trixie (the newest
# 3.11 patch release in docker-library/python when this was written; not pulled from here, as the
# repository's CI has no container engine). Pin a digest in your own build if your policy wants one.
ARG PYTHON_IMAGE=python:3.11.15-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY seedsvc ./seedsvc
COPY sidecar ./sidecar
# A wheel of seedsvc alone; its dependencies (pyproject.toml ranges) come from PyPI in the next stage.
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    # No .pyc writes (the root filesystem is read-only in the pod) and unbuffered logs.
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# A fixed numeric UID/GID, so `runAsUser: 10001` in the pod spec and `runAsNonRoot` agree with the image.
RUN groupadd --system --gid 10001 seedsvc \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin seedsvc
COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels \
 && seedsvc --version
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["seedsvc", "serve"]

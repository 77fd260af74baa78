# The two commands a fresh machine needs (see README.md):
#   make demo   deploy/'s StatefulSet on a local control plane, a real sidecar and Cassandra node per pod,
#               /seeds changing live (DEMO_ARGS=--light: sidecars only)
#   make test   build everything the tests need (cached under ~/.cache/seedsvc) and run every test
#   make bench  run benchmarks/ and write benchmarks/results/report.md (BENCH_ARGS=--quick for a short run)
#   make up     a local control plane + kubelet stand-in in the background (make down stops it);
#               more by hand: seedsvc_devcluster/README.md
#
# Everything is installed by these targets: a virtualenv in .venv, the Debian packages of the real pod
# layer (podman, buildah, debootstrap, runc, nftables, CNI plugins; as root), the control-plane and
# node binaries built from the Go module proxy, the Java shim built with Maven, Cassandra jars from
# Maven Central, and (make test) the container images built from deploy/images.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint typecheck pytest java prerequisites images clean up down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

prerequisites: $(STAMP)
	$(PY) -m seedsvc_devcluster.node.host_requirements install
	$(PY) -m seedsvc_devcluster.build
	cd java-shim && mvn -B -q -ntp package -DskipTests
	$(PY) -m seedsvc_devcluster.cassandra fetch

lint: $(STAMP)
	$(PY) -m ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

java:
	cd java-shim && mvn -B -ntp verify

pytest: $(STAMP)
	$(PY) -m pytest -ra --durations=25

# After prerequisites: the Cassandra image's shim stage builds with the Maven repository they warmed.
images: prerequisites
	$(PY) -m seedsvc_devcluster.images build

test: prerequisites images lint typecheck java pytest

demo: prerequisites
	$(PY) -m seedsvc_devcluster.demo $(DEMO_ARGS)

bench: $(STAMP)
	$(PY) -m seedsvc_devcluster.build
	$(PY) -m benchmarks $(BENCH_ARGS)

up: $(STAMP)
	$(PY) -m seedsvc_devcluster.build
	$(PY) -m seedsvc_devcluster up

down: $(STAMP)
	$(PY) -m seedsvc_devcluster down

clean:
	rm -rf $(VENV) java-shim/target .pytest_cache .mypy_cache .ruff_cache

"""The Kubernetes source: EndpointSlices (or v1 Endpoints) of one Service, listed then watched."""

from seedsvc.sources.kubernetes.diagnosis import diagnose
from seedsvc.sources.kubernetes.watching import KubernetesSource

__all__ = ["KubernetesSource", "diagnose"]

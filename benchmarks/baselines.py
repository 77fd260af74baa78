"""The two baselines the sidecar is compared with.

* :class:`ClassicSeedProvider`: what the classic in-process ``io.k8s.cassandra.KubernetesSeedProvider``
  (kubernetes/examples, cassandra/java) did on every ``getSeeds()`` call: open a new HTTPS connection
  to the API server, GET the Service's v1 Endpoints object, return every address in it. The original
  trusted every certificate; this one verifies against the cluster CA (the handshake costs the same).
* :class:`Poller`: a client that LISTs the Service's EndpointSlices every ``interval`` seconds over one
  keep-alive connection, the obvious alternative to a watch.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import time
from pathlib import Path

import aiohttp


class ClassicSeedProvider:
    def __init__(self, host: str, port: int, namespace: str, service: str, sa_dir: Path) -> None:
        self.host, self.port = host, port
        self.path = f"/api/v1/namespaces/{namespace}/endpoints/{service}"
        self.token = (sa_dir / "token").read_text().strip()
        self.context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))

    def get_seeds(self) -> list[str]:
        """One call: a fresh connection, one GET, all addresses of all subsets (as the original did)."""
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=10)
        try:
            connection.request("GET", self.path, headers={"Authorization": f"Bearer {self.token}",
                                                          "Accept": "application/json"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {self.path} -> {response.status}: {body[:200]!r}")
        finally:
            connection.close()
        endpoints = json.loads(body)
        return [address["ip"] for subset in endpoints.get("subsets") or [] for address in subset.get("addresses") or []]


class Poller:
    """LIST the Service's EndpointSlices every ``interval`` seconds (bounded by ``duration``)."""

    def __init__(self, host: str, port: int, namespace: str, service: str, sa_dir: Path, interval: float) -> None:
        self.url = f"https://{host}:{port}/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        self.params = {"labelSelector": f"kubernetes.io/service-name={service}"}
        self.token = (sa_dir / "token").read_text().strip()
        self.context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
        self.interval = interval
        self.requests = 0

    async def run(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.context, limit=1)) as session:
            next_at = time.monotonic()
            while next_at < deadline:
                async with session.get(self.url, params=self.params, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=10)) as response:
                    await response.read()
                    self.requests += 1
                next_at += self.interval
                await asyncio.sleep(max(0.0, min(next_at, deadline) - time.monotonic()))

"""``seedsvc check`` for the Kubernetes source: configuration, reachability, RBAC, the Service's endpoints."""

from __future__ import annotations

from seedsvc.settings import Settings
from seedsvc.sources.checks import Check
from seedsvc.sources.kubernetes.auth import AccessError, resolve_access
from seedsvc.sources.kubernetes.client import ApiClient, ApiError, Timeouts
from seedsvc.sources.kubernetes.watching import endpoint_slices, v1_endpoints

VERBS = ("get", "list", "watch")


async def diagnose(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    try:
        access = await resolve_access(settings)
    except AccessError as exc:
        return [Check("configuration", False, str(exc))]
    checks.append(Check("configuration", True, f"{access.origin}, server {access.base_url}"))
    timeouts = Timeouts(settings.kubernetes.connect_timeout, settings.kubernetes.request_timeout)
    async with ApiClient(access, timeouts) as client:
        try:
            version = await client.get("/version")
            checks.append(Check("API reachable", True, f"Kubernetes {version.get('gitVersion', '?')}"))
        except ApiError as exc:
            checks.append(Check("API reachable", False, exc.detail))
            if exc.reason in ("unreachable", "timeout", "tls", "credentials", "unauthorized"):
                return checks
        groups = ["endpointslices"] if settings.kubernetes.api == "endpointslices" else (
            ["endpoints"] if settings.kubernetes.api == "endpoints" else ["endpointslices", "endpoints"])
        for resource in groups:
            checks.append(await _rbac(client, settings, resource))
        checks.append(await _endpoints(client, settings))
    return checks


async def _rbac(client: ApiClient, settings: Settings, resource: str) -> Check:
    group = "discovery.k8s.io" if resource == "endpointslices" else ""
    denied = []
    for verb in VERBS:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "namespace": settings.discovery.namespace, "verb": verb, "group": group, "resource": resource}},
        }
        try:
            answer = await client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
        except ApiError as exc:
            return Check(f"RBAC {resource}", False, f"cannot ask the API server: {exc.detail}")
        if not answer.get("status", {}).get("allowed"):
            denied.append(verb)
    name = f"RBAC {'/'.join(VERBS)} {resource} in {settings.discovery.namespace}"
    if denied:
        optional = " (only needed for the Endpoints fallback)" if resource == "endpoints" else ""
        return Check(name, resource == "endpoints" and settings.kubernetes.api == "auto",
                     f"denied: {', '.join(denied)}{optional}")
    return Check(name, True, "allowed")


async def _endpoints(client: ApiClient, settings: Settings) -> Check:
    make = v1_endpoints if settings.kubernetes.api == "endpoints" else endpoint_slices
    resource = make(settings.discovery.namespace, settings.discovery.service)
    try:
        listing = await client.get(resource.path, resource.selector)
    except ApiError as exc:
        return Check(f"{resource.kind} of {settings.discovery.service}", False, exc.detail)
    items = [i for i in listing.get("items") or [] if isinstance(i, dict)]
    parsed = resource.parse(items)
    ready = sum(1 for e in parsed.endpoints if e.eligible)
    detail = f"{len(items)} objects, {len(parsed.endpoints)} endpoints, {ready} ready"
    if parsed.skipped:
        detail += f", {parsed.skipped} malformed records skipped"
    service = f"{settings.discovery.namespace}/{settings.discovery.service}"
    return Check(f"{resource.kind} of service {service}", bool(items), detail)

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
    async with ApiClient(access, Timeouts(settings.connect_timeout, settings.request_timeout)) as client:
        try:
            version = await client.get("/version")
            checks.append(Check("API reachable", True, f"Kubernetes {version.get('gitVersion', '?')}"))
        except ApiError as exc:
            checks.append(Check("API reachable", False, exc.detail))
            if exc.reason in ("unreachable", "timeout", "tls", "credentials", "unauthorized"):
                return checks
        groups = ["endpointslices"] if settings.api == "endpointslices" else (
            ["endpoints"] if settings.api == "endpoints" else ["endpointslices", "endpoints"])
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
                "namespace": settings.namespace, "verb": verb, "group": group, "resource": resource}},
        }
        try:
            answer = await client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review)
        except ApiError as exc:
            return Check(f"RBAC {resource}", False, f"cannot ask the API server: {exc.detail}")
        if not answer.get("status", {}).get("allowed"):
            denied.append(verb)
    name = f"RBAC {'/'.join(VERBS)} {resource} in {settings.namespace}"
    if denied:
        optional = " (only needed for the Endpoints fallback)" if resource == "endpoints" else ""
        return Check(name, resource == "endpoints" and settings.api == "auto",
                     f"denied: {', '.join(denied)}{optional}")
    return Check(name, True, "allowed")


async def _endpoints(client: ApiClient, settings: Settings) -> Check:
    make = v1_endpoints if settings.api == "endpoints" else endpoint_slices
    resource = make(settings.namespace, settings.service)
    try:
        listing = await client.get(resource.path, resource.selector)
    except ApiError as exc:
        return Check(f"{resource.kind} of {settings.service}", False, exc.detail)
    items = [i for i in listing.get("items") or [] if isinstance(i, dict)]
    parsed = resource.parse(items)
    ready = sum(1 for e in parsed.endpoints if e.eligible)
    detail = f"{len(items)} objects, {len(parsed.endpoints)} endpoints, {ready} ready"
    if parsed.skipped:
        detail += f", {parsed.skipped} malformed records skipped"
    return Check(f"{resource.kind} of service {settings.namespace}/{settings.service}", bool(items), detail)

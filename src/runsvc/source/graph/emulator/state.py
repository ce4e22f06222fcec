"""What the Graph emulator holds and decides: apps, tenants and their Intune
objects, access tokens, and Graph's throttling by per-tenant and per-app
budgets. Thread-safe (one lock), so tests read it while the server runs.

It follows Microsoft's documentation for the parts runsvc uses, and is
deliberately strict where Graph is lenient or undocumented (read-only
properties in a write body are refused), so that the adapter's care shows.
"""

from __future__ import annotations

import base64
import copy
import math
import random
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from runsvc.source.graph.emulator.assertion import assertion_error

READ_WRITE = "DeviceManagementConfiguration.ReadWrite.All"
READ = "DeviceManagementConfiguration.Read.All"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_BATCH = 20
MAX_TOP = 999


@dataclass(frozen=True)
class Rules:
    """How one Intune collection behaves, per Microsoft's documentation."""

    versions: tuple[str, ...]
    name_property: str
    read_only: frozenset[str]
    # Navigation properties: returned only with $expand, and what a create
    # must (or may) carry. A PATCH may carry only those in `patchable`.
    navigation: tuple[str, ...] = ()
    required_on_create: tuple[str, ...] = ()
    patchable_navigation: tuple[str, ...] = ()
    expand: dict[str, str] = field(default_factory=dict)


_NESTED_ACTIONS = "scheduledActionsForRule($expand=scheduledActionConfigurations)"
_COMMON_READ_ONLY = frozenset({"id", "createdDateTime", "lastModifiedDateTime", "version"})

COLLECTIONS: dict[str, Rules] = {
    "deviceConfigurations": Rules(
        versions=("v1.0", "beta"), name_property="displayName", read_only=_COMMON_READ_ONLY
    ),
    # A compliance policy is created together with its scheduled actions
    # (POST refuses one without); they come back only through $expand and
    # change through the scheduleActionsForRules action, not PATCH.
    "deviceCompliancePolicies": Rules(
        versions=("v1.0", "beta"),
        name_property="displayName",
        read_only=_COMMON_READ_ONLY,
        navigation=("scheduledActionsForRule",),
        required_on_create=("scheduledActionsForRule",),
        expand={
            "scheduledActionsForRule": "scheduledActionsForRule",
            _NESTED_ACTIONS: "scheduledActionsForRule",
        },
    ),
    # Settings catalog: beta only, `name` instead of `displayName`, and the
    # settings only through $expand=settings.
    "configurationPolicies": Rules(
        versions=("beta",),
        name_property="name",
        read_only=frozenset(
            {"id", "createdDateTime", "lastModifiedDateTime", "settingCount", "isAssigned"}
        ),
        navigation=("settings",),
        patchable_navigation=("settings",),
        expand={"settings": "settings"},
    ),
}


@dataclass
class Reply:
    """One answer of the emulator: an HTTP response or a $batch sub-response."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class App:
    client_id: str
    secret: str | None = None
    # PEM certificate whose key signs client assertions (certificate credentials).
    certificate_pem: bytes | None = None


@dataclass
class Tenant:
    tenant_id: str
    # Admin consent: the apps with a service principal here, and their permissions.
    grants: dict[str, set[str]] = field(default_factory=dict)
    # collection -> object id -> object (navigation properties included).
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in COLLECTIONS}
    )
    # Writes of these objects (by id or name) are refused: key -> (status, code).
    rejections: dict[str, tuple[int, str]] = field(default_factory=dict)
    forced_throttle_until: float = 0.0


@dataclass
class Token:
    tenant_id: str
    client_id: str
    expires_at: float


@dataclass
class Knobs:
    """The emulator's knobs; change them at any time."""

    latency: float = 0.0
    page_size: int = 100
    token_lifetime: int = 3599
    # Budgets per window (Intune device configuration, Microsoft's numbers).
    window_seconds: float = 20.0
    app_requests: int = 1000
    app_writes: int = 100
    tenant_requests: int = 2000
    tenant_writes: int = 200
    # Share of 429s sent without Retry-After, and of calls answered 503.
    omit_retry_after_ratio: float = 0.0
    unavailable_ratio: float = 0.0
    unavailable_retry_after: int = 1


@dataclass(frozen=True)
class Call:
    """One request as Graph counts it (a $batch counts each sub-request)."""

    at: float
    tenant_id: str
    client_id: str
    method: str
    path: str
    status: int
    agent: str


class _Window:
    """A sliding window of call times. Throttled calls count too: Graph
    keeps counting while a caller hammers it."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def hit(self, now: float, limit: int, window: float) -> float | None:
        """Counts a call; the seconds until one would pass again, if over."""
        times = self.times
        times.append(now)
        horizon = now - window
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) <= limit:
            return None
        # The call after this one passes once all but limit - 1 have aged out.
        return times[len(times) - limit] + window - now


def _now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def graph_error(status: int, code: str, message: str, **headers: str) -> Reply:
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": _now_text()[:19], "request-id": request_id},
        }
    }
    return Reply(status, body, {"request-id": request_id, **headers})


def token_error(status: int, error: str, description: str) -> Reply:
    return Reply(
        status,
        {
            "error": error,
            "error_description": f"{description}\r\nTrace ID: {uuid.uuid4()}\r\n"
            f"Correlation ID: {uuid.uuid4()}\r\nTimestamp: {_now_text()}",
            "error_codes": [int(description[6:].split(":")[0])],
            "timestamp": _now_text(),
        },
    )


class EmulatorState:
    def __init__(self, settings: Knobs | None = None, *, seed: int | None = None) -> None:
        self.settings = settings or Knobs()
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.apps: dict[str, App] = {}
        self.tenants: dict[str, Tenant] = {}
        self._tokens: dict[str, Token] = {}
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self.calls: deque[Call] = deque(maxlen=2_000_000)
        self.tokens_issued: Counter[str] = Counter()
        self.http_requests = 0
        self.batches = 0

    # --- setup (tests, the CLI, the admin routes) -----------------------

    def add_app(
        self, client_id: str, *, secret: str | None = None, certificate_pem: bytes | None = None
    ) -> None:
        with self._lock:
            self.apps[client_id] = App(client_id, secret, certificate_pem)

    def add_tenant(
        self,
        tenant_id: str,
        *,
        consent: Iterable[str] = (),
        permissions: Iterable[str] = (READ_WRITE,),
    ) -> Tenant:
        """A tenant where the given apps have admin consent for `permissions`."""
        with self._lock:
            tenant = self.tenants.setdefault(tenant_id, Tenant(tenant_id))
            for client_id in consent:
                tenant.grants[client_id] = set(permissions)
            return tenant

    def put_object(self, tenant_id: str, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Stores an object as if an admin had made it; returns it with its id."""
        with self._lock:
            return self._store_new(self.tenants[tenant_id], collection, copy.deepcopy(obj))

    def get_object(self, tenant_id: str, collection: str, object_id: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.tenants[tenant_id].objects[collection].get(object_id)
            return copy.deepcopy(obj) if obj is not None else None

    def objects(self, tenant_id: str, collection: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self.tenants[tenant_id].objects[collection].values()))

    def delete_object(self, tenant_id: str, collection: str, object_id: str) -> bool:
        with self._lock:
            return self.tenants[tenant_id].objects[collection].pop(object_id, None) is not None

    def reject_writes(
        self, tenant_id: str, key: str, status: int = 400, code: str = "BadRequest"
    ) -> None:
        """Refuses every write of the object with this id or name."""
        with self._lock:
            self.tenants[tenant_id].rejections[key] = (status, code)

    def throttle(self, tenant_id: str, seconds: float) -> None:
        """Answers every call of the tenant 429 for `seconds` (a storm)."""
        with self._lock:
            self.tenants[tenant_id].forced_throttle_until = time.monotonic() + seconds

    def expire_tokens(self) -> int:
        """Makes every access token issued so far invalid (as at expiry)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0
            return len(self._tokens)

    def configure(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                if not hasattr(self.settings, name):
                    raise ValueError(f"unknown emulator setting {name!r}")
                setattr(self.settings, name, type(getattr(self.settings, name))(value))

    # --- what tests read -------------------------------------------------

    def call_log(self, tenant_id: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if tenant_id is None or c.tenant_id == tenant_id]

    def summary(self) -> dict[str, Any]:
        with self._lock:
            statuses: Counter[int] = Counter(c.status for c in self.calls)
            per_tenant: dict[str, Counter[int]] = {}
            for c in self.calls:
                per_tenant.setdefault(c.tenant_id, Counter())[c.status] += 1
            return {
                "httpRequests": self.http_requests,
                "batches": self.batches,
                "calls": len(self.calls),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "tokensIssued": dict(self.tokens_issued),
                "tenants": {
                    tid: {
                        "calls": sum(counts.values()),
                        "throttled": counts[429],
                        "unavailable": counts[503],
                        "objects": {
                            name: len(objs) for name, objs in self.tenants[tid].objects.items()
                        }
                        if tid in self.tenants
                        else {},
                    }
                    for tid, counts in per_tenant.items()
                },
            }

    # --- the login endpoints ---------------------------------------------

    def openid_configuration(self, base_url: str, tenant_id: str) -> Reply:
        with self._lock:
            if tenant_id not in self.tenants:
                return token_error(
                    400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant_id}' not found."
                )
        root = f"{base_url}/{tenant_id}"
        return Reply(
            200,
            {
                "issuer": f"{root}/v2.0",
                "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
                "token_endpoint": f"{root}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "jwks_uri": f"{base_url}/{tenant_id}/discovery/v2.0/keys",
                "tenant_region_scope": "EU",
            },
        )

    def issue_token(self, base_url: str, tenant_id: str, form: dict[str, str]) -> Reply:
        """OAuth 2.0 client credentials (a secret, or a certificate's signed assertion)."""
        with self._lock:
            tenant = self.tenants.get(tenant_id)
            if tenant is None:
                return token_error(
                    400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant_id}' not found."
                )
            if form.get("grant_type") != "client_credentials":
                return token_error(
                    400, "unsupported_grant_type", "AADSTS70003: The grant type is not supported."
                )
            client_id = form.get("client_id", "")
            app = self.apps.get(client_id)
            if app is None or client_id not in tenant.grants:
                return token_error(
                    400,
                    "unauthorized_client",
                    f"AADSTS700016: Application with identifier '{client_id}' was not found "
                    f"in the directory '{tenant_id}'. The app may not have been installed by "
                    "the administrator of the tenant or consented to by any user.",
                )
            if form.get("scope") != f"{base_url}/.default":
                return token_error(
                    400,
                    "invalid_scope",
                    "AADSTS1002012: The provided value for scope is not valid.",
                )
            if "client_assertion" in form:
                problem = assertion_error(
                    form, app.certificate_pem, f"{base_url}/{tenant_id}/oauth2/v2.0/token"
                )
                if problem:
                    return token_error(401, "invalid_client", f"AADSTS700027: {problem}")
            elif app.secret is None or not secrets.compare_digest(
                form.get("client_secret", ""), app.secret
            ):
                return token_error(
                    401,
                    "invalid_client",
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                    f"sent in the request is the client secret value, for app '{client_id}'.",
                )
            access_token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
            lifetime = self.settings.token_lifetime
            self._tokens[access_token] = Token(tenant_id, client_id, time.monotonic() + lifetime)
            self.tokens_issued[tenant_id] += 1
        return Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access_token,
            },
        )

    # --- Graph -----------------------------------------------------------

    def authenticate(self, authorization: str | None, *, agent: str = "") -> Token | Reply:
        scheme, _, value = (authorization or "").partition(" ")
        with self._lock:
            token = self._tokens.get(value) if scheme.lower() == "bearer" else None
            if token is None:
                return graph_error(
                    401, "InvalidAuthenticationToken", "Access token is empty or malformed."
                )
            if token.expires_at <= time.monotonic():
                # Logged as the tenant's call: tests see the refusal a worker got.
                self.calls.append(
                    Call(time.monotonic(), token.tenant_id, token.client_id, "", "", 401, agent)
                )
                return graph_error(
                    401,
                    "InvalidAuthenticationToken",
                    "Lifetime validation failed, the token is expired.",
                )
            return token

    def handle(
        self,
        token: Token,
        method: str,
        version: str,
        url: str,
        body: Any,
        *,
        base_url: str,
        agent: str = "",
    ) -> Reply:
        """One Graph call (a top-level request or one request of a $batch)."""
        path, _, query_text = url.partition("?")
        query = _parse_query(query_text)
        with self._lock:
            tenant = self.tenants[token.tenant_id]
            reply = self._throttle_check(tenant, token.client_id, method)
            if reply is None:
                reply = self._dispatch(
                    tenant, token.client_id, method, version, path, query, body, base_url
                )
            self.calls.append(
                Call(
                    time.monotonic(),
                    tenant.tenant_id,
                    token.client_id,
                    method,
                    path,
                    reply.status,
                    agent,
                )
            )
            return reply

    def shuffle(self, items: list[Any]) -> None:
        with self._lock:
            self._random.shuffle(items)

    def count_http_request(self, *, batch: bool = False) -> None:
        with self._lock:
            self.http_requests += 1
            self.batches += int(batch)

    def _throttle_check(self, tenant: Tenant, client_id: str, method: str) -> Reply | None:
        settings, now = self.settings, time.monotonic()
        write = method in WRITE_METHODS
        waits = []
        budgets = [
            ((tenant.tenant_id, client_id, "any"), settings.app_requests),
            ((tenant.tenant_id, "*", "any"), settings.tenant_requests),
        ]
        if write:
            budgets += [
                ((tenant.tenant_id, client_id, "write"), settings.app_writes),
                ((tenant.tenant_id, "*", "write"), settings.tenant_writes),
            ]
        for key, limit in budgets:
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window()
            wait = window.hit(now, limit, settings.window_seconds)
            if wait is not None:
                waits.append(wait)
        if tenant.forced_throttle_until > now:
            waits.append(tenant.forced_throttle_until - now)
        if waits:
            headers = {}
            if self._random.random() >= settings.omit_retry_after_ratio:
                headers["Retry-After"] = str(max(1, math.ceil(max(waits))))
            return graph_error(429, "TooManyRequests", "Too many requests.", **headers)
        if settings.unavailable_ratio and self._random.random() < settings.unavailable_ratio:
            return graph_error(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable.",
                **{"Retry-After": str(settings.unavailable_retry_after)},
            )
        return None

    def _dispatch(
        self,
        tenant: Tenant,
        client_id: str,
        method: str,
        version: str,
        path: str,
        query: dict[str, str],
        body: Any,
        base_url: str,
    ) -> Reply:
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "deviceManagement" or parts[1] not in COLLECTIONS:
            return graph_error(
                400, "BadRequest", f"Resource not found for the segment '{'/'.join(parts[:2])}'."
            )
        collection, rules = parts[1], COLLECTIONS[parts[1]]
        if version not in rules.versions:
            return graph_error(
                400, "BadRequest", f"Resource not found for the segment '{collection}'."
            )
        granted = tenant.grants.get(client_id, set())
        needed = {READ, READ_WRITE} if method == "GET" else {READ_WRITE}
        if not granted & needed:
            return graph_error(
                403,
                "Forbidden",
                "Application is not authorized to perform this operation. Application must "
                f"have one of the following scopes: {', '.join(sorted(needed))}",
            )
        objects = tenant.objects[collection]
        expand = query.get("$expand")
        if expand is not None and expand not in rules.expand:
            return graph_error(400, "BadRequest", f"Could not find a property named '{expand}'.")
        expanded = rules.expand.get(expand or "")
        nested = expand == _NESTED_ACTIONS

        if len(parts) == 2:
            if method == "GET":
                reply = self._list(objects, rules, version, collection, query, expanded, base_url)
                if not nested and reply.status == 200:
                    reply.body["value"] = [_without_action_items(v) for v in reply.body["value"]]
                return reply
            if method == "POST":
                return self._create(tenant, collection, rules, body)
            return graph_error(405, "BadRequest", "The HTTP method is not allowed.")

        object_id = parts[2]
        obj = objects.get(object_id)
        if len(parts) == 4 and parts[3] == "scheduleActionsForRules" and method == "POST":
            if collection != "deviceCompliancePolicies" or obj is None:
                return graph_error(404, "ResourceNotFound", "Resource not found.")
            return self._schedule_actions(tenant, obj, body)
        if len(parts) != 3:
            return graph_error(400, "BadRequest", "Resource not found for the segment.")
        if obj is None:
            return graph_error(
                404, "ResourceNotFound", f"No {collection} with id '{object_id}' exists."
            )
        if method == "GET":
            view = self._view(obj, rules, version, collection, expanded, base_url, single=True)
            return Reply(200, _without_action_items(view) if not nested else view)
        if method == "PATCH":
            return self._update(tenant, collection, rules, obj, body)
        if method == "DELETE":
            del objects[object_id]
            return Reply(204)
        return graph_error(405, "BadRequest", "The HTTP method is not allowed.")

    def _view(
        self,
        obj: dict[str, Any],
        rules: Rules,
        version: str,
        collection: str,
        expanded: str | None,
        base_url: str,
        *,
        single: bool = False,
        select: list[str] | None = None,
    ) -> dict[str, Any]:
        view = {k: v for k, v in obj.items() if k not in rules.navigation or k == expanded}
        if select:
            view = {k: v for k, v in view.items() if k in select or k in ("id", "@odata.type")}
        view = copy.deepcopy(view)
        if single:
            context = f"{base_url}/{version}/$metadata#deviceManagement/{collection}/$entity"
            view = {"@odata.context": context, **view}
        return view

    def _list(
        self,
        objects: dict[str, dict[str, Any]],
        rules: Rules,
        version: str,
        collection: str,
        query: dict[str, str],
        expanded: str | None,
        base_url: str,
    ) -> Reply:
        try:
            top = min(int(query.get("$top", self.settings.page_size)), MAX_TOP)
            offset = (
                int(base64.urlsafe_b64decode(query["$skiptoken"]).decode())
                if "$skiptoken" in query
                else 0
            )
        except ValueError:
            return graph_error(400, "BadRequest", "Invalid $top or $skiptoken.")
        if top < 1:
            return graph_error(400, "BadRequest", "Invalid $top.")
        select = [s for s in query.get("$select", "").split(",") if s] or None
        page = list(objects.values())[offset : offset + top]
        body: dict[str, Any] = {
            "@odata.context": f"{base_url}/{version}/$metadata#deviceManagement/{collection}",
            "value": [
                self._view(o, rules, version, collection, expanded, base_url, select=select)
                for o in page
            ],
        }
        if offset + top < len(objects):
            next_query = {k: v for k, v in query.items() if k != "$skiptoken"}
            next_query["$skiptoken"] = base64.urlsafe_b64encode(str(offset + top).encode()).decode()
            text = "&".join(f"{k}={v}" for k, v in next_query.items())
            body["@odata.nextLink"] = f"{base_url}/{version}/deviceManagement/{collection}?{text}"
        return Reply(200, body)

    def _refusal(
        self, tenant: Tenant, rules: Rules, obj_id: str | None, body: dict[str, Any]
    ) -> Reply | None:
        for key in (obj_id, body.get(rules.name_property)):
            if key and key in tenant.rejections:
                status, code = tenant.rejections[key]
                return graph_error(
                    status,
                    code,
                    f"Invalid request: property value rejected by the Intune service "
                    f"(tenant {tenant.tenant_id}, correlation {uuid.uuid4()}).",
                )
        return None

    def _check_body(
        self, rules: Rules, body: Any, *, navigation_allowed: Iterable[str]
    ) -> Reply | None:
        if not isinstance(body, dict):
            return graph_error(400, "BadRequest", "The request body must be a JSON object.")
        for key in body:
            if key in rules.read_only:
                return graph_error(
                    400, "ModelValidationFailure", f"The property '{key}' is read-only."
                )
            if (key.startswith("@") and key != "@odata.type") or "@odata." in key[1:]:
                return graph_error(
                    400, "ModelValidationFailure", f"The annotation '{key}' is not allowed."
                )
            if key in rules.navigation and key not in navigation_allowed:
                return graph_error(
                    400,
                    "ModelValidationFailure",
                    f"The navigation property '{key}' cannot be written here.",
                )
        return None

    def _create(self, tenant: Tenant, collection: str, rules: Rules, body: Any) -> Reply:
        problem = self._check_body(rules, body, navigation_allowed=rules.navigation)
        if problem:
            return problem
        for key in ("@odata.type", rules.name_property, *rules.required_on_create):
            if not body.get(key):
                return graph_error(
                    400, "ModelValidationFailure", f"The property '{key}' is required."
                )
        refusal = self._refusal(tenant, rules, None, body)
        if refusal:
            return refusal
        created = self._store_new(tenant, collection, copy.deepcopy(body))
        return Reply(
            201, {k: v for k, v in copy.deepcopy(created).items() if k not in rules.navigation}
        )

    def _update(
        self, tenant: Tenant, collection: str, rules: Rules, obj: dict[str, Any], body: Any
    ) -> Reply:
        problem = self._check_body(rules, body, navigation_allowed=rules.patchable_navigation)
        if problem:
            return problem
        if "@odata.type" in body and body["@odata.type"] != obj.get("@odata.type"):
            return graph_error(400, "ModelValidationFailure", "The @odata.type cannot change.")
        refusal = self._refusal(tenant, rules, obj["id"], body)
        if refusal:
            return refusal
        changes = copy.deepcopy(body)
        if "settings" in changes:
            changes["settings"] = _numbered_settings(changes["settings"])
            changes["settingCount"] = len(changes["settings"])
        obj.update(changes)
        obj["lastModifiedDateTime"] = _now_text()
        if "version" in obj:
            obj["version"] += 1
        return Reply(204)

    def _schedule_actions(self, tenant: Tenant, obj: dict[str, Any], body: Any) -> Reply:
        rules_list = (
            body.get("deviceComplianceScheduledActionForRules") if isinstance(body, dict) else None
        )
        if not isinstance(rules_list, list):
            return graph_error(
                400, "BadRequest", "deviceComplianceScheduledActionForRules is required."
            )
        refusal = self._refusal(tenant, COLLECTIONS["deviceCompliancePolicies"], obj["id"], obj)
        if refusal:
            return refusal
        obj["scheduledActionsForRule"] = _numbered_actions(copy.deepcopy(rules_list))
        obj["lastModifiedDateTime"] = _now_text()
        return Reply(204)

    def _store_new(self, tenant: Tenant, collection: str, obj: dict[str, Any]) -> dict[str, Any]:
        now = _now_text()
        obj.setdefault("id", str(uuid.uuid4()))
        obj.setdefault("createdDateTime", now)
        obj["lastModifiedDateTime"] = now
        if collection == "configurationPolicies":
            obj["settings"] = _numbered_settings(obj.get("settings", []))
            obj["settingCount"] = len(obj["settings"])
            obj.setdefault("isAssigned", False)
        else:
            obj.setdefault("version", 1)
        if collection == "deviceCompliancePolicies":
            obj["scheduledActionsForRule"] = _numbered_actions(
                obj.get("scheduledActionsForRule", [])
            )
        tenant.objects[collection][obj["id"]] = obj
        return obj


def _numbered_settings(settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Settings get their ids from the service: their index, as text."""
    return [
        {**{k: v for k, v in s.items() if k != "id"}, "id": str(i)} for i, s in enumerate(settings)
    ]


def _numbered_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    numbered = []
    for action in actions:
        configs = [
            {**{k: v for k, v in c.items() if k != "id"}, "id": str(uuid.uuid4())}
            for c in action.get("scheduledActionConfigurations", [])
        ]
        numbered.append(
            {
                **{k: v for k, v in action.items() if k != "id"},
                "id": str(uuid.uuid4()),
                "scheduledActionConfigurations": configs,
            }
        )
    return numbered


def _without_action_items(view: dict[str, Any]) -> dict[str, Any]:
    """Scheduled actions without their configurations (no nested $expand)."""
    if "scheduledActionsForRule" in view:
        view["scheduledActionsForRule"] = [
            {k: v for k, v in a.items() if k != "scheduledActionConfigurations"}
            for a in view["scheduledActionsForRule"]
        ]
    return view


def _parse_query(text: str) -> dict[str, str]:
    query = {}
    for pair in text.split("&"):
        if pair:
            key, _, value = pair.partition("=")
            query[unquote(key)] = unquote(value)
    return query

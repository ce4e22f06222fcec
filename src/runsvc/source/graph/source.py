"""The Microsoft Graph TenantSource: a runsvc tenant's Intune policies (device
configurations, compliance policies, settings-catalog policies) read in JSON
$batch requests of 20 and written back by PATCH, or by POST when the policy
is gone. Policy ids are Graph object ids; a policy's type is its collection.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from psycopg_pool import ConnectionPool

from runsvc import safe_errors
from runsvc.model import LivePolicy
from runsvc.source.graph.client import MAX_BATCH, GraphClient, Request, Response, refusal
from runsvc.source.graph.collections import COLLECTIONS, Collection, Write
from runsvc.source.graph.errors import GraphRefused, GraphThrottled, GraphTimeout, GraphUnavailable
from runsvc.source.graph.settings import GraphSettings
from runsvc.source.port import (
    WRITTEN,
    Deadline,
    GetResult,
    ItemFailure,
    PolicyIdPage,
    PutResult,
    SourceRejected,
    SourceThrottled,
    SourceTimeout,
    SourceUnavailable,
)
from runsvc.store import graph as store
from runsvc.store import tenants as tenant_store

# Ids per list page: Graph's largest $top.
LIST_PAGE_SIZE = 999
# How long a tenant's Entra tenant id is trusted before it is read again.
TENANT_CACHE_SECONDS = 30.0
# A policy id never listed sends the adapter to list the tenant again, at
# most this often.
REINDEX_SECONDS = 60.0

TENANT_NOT_FOUND = "TENANT_NOT_FOUND"
GRAPH_TENANT_NOT_SET = "GRAPH_TENANT_NOT_SET"
UNKNOWN_COLLECTION = "GRAPH_UNKNOWN_COLLECTION"
THROTTLED = safe_errors.SOURCE_THROTTLED
UNAVAILABLE = safe_errors.SOURCE_UNAVAILABLE


@contextlib.contextmanager
def port_errors() -> Iterator[None]:
    """The Graph client's errors as the port's."""
    try:
        yield
    except GraphThrottled as exc:
        raise SourceThrottled(str(exc), retry_after=exc.retry_after) from None
    except GraphTimeout as exc:
        raise SourceTimeout(str(exc)) from None
    except GraphUnavailable as exc:
        raise SourceUnavailable(str(exc)) from None
    except GraphRefused as exc:
        raise SourceRejected(exc.code) from None


def _failure(response: Response) -> ItemFailure:
    problem = refusal(response)
    if isinstance(problem, GraphRefused):
        return ItemFailure(problem.code)
    return ItemFailure(UNAVAILABLE, transient=True)


@dataclass
class _Plan:
    """What one policy of a put_policies call needs and got."""

    policy: LivePolicy
    collection: Collection
    target: str
    writes: list[Write]
    statuses: list[Response] = field(default_factory=list)


class GraphTenantSource:
    def __init__(
        self, pool: ConnectionPool, settings: GraphSettings, *, client: GraphClient | None = None
    ) -> None:
        self._pool = pool
        self._client = client or GraphClient(settings, pool)
        self._tenants: dict[str, tuple[float, int, str]] = {}
        self._reindexed: dict[str, float] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    # --- the port ---------------------------------------------------------

    def list_policy_ids(
        self, tenant: str, *, cursor: str | None, deadline: Deadline
    ) -> PolicyIdPage:
        tenant_id, graph_tenant_id = self._tenant(tenant)
        names = list(COLLECTIONS)
        index, _, url = (cursor or "0:").partition(":")
        position = int(index)
        next_url: str | None = url or None
        with port_errors():
            while position < len(names):
                collection = COLLECTIONS[names[position]]
                values, next_url = self._client.page(
                    graph_tenant_id,
                    collection.version,
                    next_url or collection.list_url(LIST_PAGE_SIZE),
                    deadline=deadline.at,
                )
                ids = [str(v["id"]) for v in values]
                with self._pool.connection() as conn:
                    store.graph_policies_upsert(
                        conn, tenant_id, [(i, collection.name) for i in ids]
                    )
                if next_url is None:
                    position += 1
                if ids or position >= len(names):
                    more = position < len(names)
                    return PolicyIdPage(ids, f"{position}:{next_url or ''}" if more else None)
        return PolicyIdPage([], None)

    def get_policies(
        self, tenant: str, policy_ids: Sequence[str], *, deadline: Deadline
    ) -> Mapping[str, GetResult]:
        tenant_id, graph_tenant_id = self._tenant(tenant)
        places = self._places(tenant, tenant_id, policy_ids, deadline)
        results: dict[str, GetResult] = {}
        groups: dict[str, list[tuple[str, str]]] = {}
        for policy_id in dict.fromkeys(policy_ids):
            place = places.get(policy_id)
            if place is None:
                results[policy_id] = None  # not in any collection: no such policy
            else:
                target = place.replaced_by or policy_id
                groups.setdefault(place.collection, []).append((policy_id, target))
        chunks = [
            (COLLECTIONS[name], members[start : start + MAX_BATCH])
            for name, members in groups.items()
            for start in range(0, len(members), MAX_BATCH)
        ]
        answers = self._send_all(
            graph_tenant_id,
            [(c.version, [Request("GET", c.item_url(t)) for _, t in chunk]) for c, chunk in chunks],
            deadline,
        )
        for (collection, chunk), responses in zip(chunks, answers, strict=False):
            for (policy_id, _), response in zip(chunk, responses, strict=True):
                if response.status == 200 and isinstance(response.body, dict):
                    payload = collection.payload(response.body)
                    results[policy_id] = LivePolicy(
                        policy_id, collection.name, collection.display_name(payload), payload
                    )
                elif response.status == 404:
                    results[policy_id] = None
                else:
                    results[policy_id] = _failure(response)
        for _, chunk in chunks[len(answers) :]:
            for policy_id, _ in chunk:  # the tenant's turn came too late for these
                results[policy_id] = ItemFailure(THROTTLED, transient=True)
        return results

    def put_policies(
        self, tenant: str, policies: Sequence[LivePolicy], *, deadline: Deadline
    ) -> Mapping[str, PutResult]:
        tenant_id, graph_tenant_id = self._tenant(tenant)
        latest = list({p.policy_id: p for p in policies}.values())
        with self._pool.connection() as conn:
            places = store.graph_policies_get(conn, tenant_id, [p.policy_id for p in latest])
        results: dict[str, PutResult] = {}
        plans: list[_Plan] = []
        for policy in latest:
            collection = COLLECTIONS.get(policy.policy_type)
            if collection is None:
                # A snapshot of another source's policy: Graph has no place for it.
                results[policy.policy_id] = ItemFailure(UNKNOWN_COLLECTION)
                continue
            place = places.get(policy.policy_id)
            target = (place.replaced_by if place else None) or policy.policy_id
            plans.append(
                _Plan(policy, collection, target, collection.updates(target, policy.payload))
            )

        # Round 1: update in place (PATCH, and for a compliance policy its actions).
        self._write(graph_tenant_id, plans, lambda plan: plan.writes, deadline, results)
        gone = []
        for plan in plans:
            if plan.policy.policy_id in results:
                continue
            if any(r.status == 404 for r in plan.statuses):
                gone.append(plan)
            elif all(r.ok for r in plan.statuses):
                results[plan.policy.policy_id] = WRITTEN
            else:
                failed = next(r for r in plan.statuses if not r.ok)
                results[plan.policy.policy_id] = _failure(failed)

        # Round 2: the gone ones anew (POST; Graph gives each a new id).
        for plan in gone:
            plan.statuses = []
        self._write(
            graph_tenant_id,
            gone,
            lambda plan: [plan.collection.create(plan.policy.payload)],
            deadline,
            results,
        )
        replacements = []
        for plan in gone:
            if plan.policy.policy_id in results:
                continue
            (response,) = plan.statuses
            if response.ok and isinstance(response.body, dict) and response.body.get("id"):
                replacements.append(
                    (plan.policy.policy_id, str(response.body["id"]), plan.collection.name)
                )
                results[plan.policy.policy_id] = WRITTEN
            else:
                results[plan.policy.policy_id] = _failure(response)
        with self._pool.connection() as conn:
            store.graph_policies_replace(conn, tenant_id, replacements)
        return results

    # --- machinery ----------------------------------------------------------

    def _tenant(self, tenant: str) -> tuple[int, str]:
        """(runsvc tenant id, Entra tenant id); cached for a few seconds."""
        now = time.monotonic()
        with self._lock:
            cached = self._tenants.get(tenant)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        with self._pool.connection() as conn:
            row = tenant_store.tenant_graph_get(conn, tenant)
        if row is None:
            raise SourceRejected(TENANT_NOT_FOUND)
        tenant_id, graph_tenant_id = row
        if graph_tenant_id is None:
            raise SourceRejected(GRAPH_TENANT_NOT_SET)
        with self._lock:
            self._tenants[tenant] = (now + TENANT_CACHE_SECONDS, tenant_id, graph_tenant_id)
        return tenant_id, graph_tenant_id

    def _places(
        self, tenant: str, tenant_id: int, policy_ids: Sequence[str], deadline: Deadline
    ) -> dict[str, store.GraphPlace]:
        """Each id's collection; ids never listed make the adapter list the
        tenant again first (at most every REINDEX_SECONDS)."""
        with self._pool.connection() as conn:
            places = store.graph_policies_get(conn, tenant_id, policy_ids)
        if all(i in places for i in policy_ids):
            return places
        now = time.monotonic()
        with self._lock:
            recent = self._reindexed.get(tenant, -REINDEX_SECONDS) > now - REINDEX_SECONDS
            if not recent:
                self._reindexed[tenant] = now
        if recent:
            return places
        cursor: str | None = None
        while True:
            page = self.list_policy_ids(tenant, cursor=cursor, deadline=deadline)
            cursor = page.next_cursor
            if cursor is None:
                break
        with self._pool.connection() as conn:
            return store.graph_policies_get(conn, tenant_id, policy_ids)

    def _send_all(
        self, graph_tenant_id: str, calls: list[tuple[str, list[Request]]], deadline: Deadline
    ) -> list[list[Response]]:
        """Sends each (version, requests) as one $batch; the answers in order.
        When the tenant's turn comes after the deadline, the answers so far
        are returned (fewer than the calls); with none yet, the whole call
        is throttled."""
        answers: list[list[Response]] = []
        for version, requests in calls:
            try:
                with port_errors():
                    answers.append(
                        self._client.batch(graph_tenant_id, version, requests, deadline=deadline.at)
                    )
            except (SourceThrottled, SourceTimeout):
                if not answers:
                    raise
                break
        return answers

    def _write(
        self,
        graph_tenant_id: str,
        plans: list[_Plan],
        writes_of: Callable[[_Plan], list[Write]],
        deadline: Deadline,
        results: dict[str, PutResult],
    ) -> None:
        """Sends the plans' writes in $batch requests of up to 20 (one API
        version each), collecting each plan's responses in plan.statuses; a
        plan left incomplete by the deadline fails transiently (throttled)."""
        by_version: dict[str, list[tuple[_Plan, Write]]] = {}
        expected: dict[int, int] = {}
        for plan in plans:
            writes = writes_of(plan)
            expected[id(plan)] = len(writes)
            for write in writes:
                by_version.setdefault(plan.collection.version, []).append((plan, write))
        chunks = [
            (version, writes[start : start + MAX_BATCH])
            for version, writes in by_version.items()
            for start in range(0, len(writes), MAX_BATCH)
        ]
        answers = self._send_all(
            graph_tenant_id,
            [(v, [Request(w.method, w.url, w.body) for _, w in chunk]) for v, chunk in chunks],
            deadline,
        )
        for (_, chunk), responses in zip(chunks, answers, strict=False):
            for (plan, _), response in zip(chunk, responses, strict=True):
                plan.statuses.append(response)
        for plan in plans:
            if len(plan.statuses) < expected[id(plan)]:
                results.setdefault(plan.policy.policy_id, ItemFailure(THROTTLED, transient=True))


def create(pool: ConnectionPool) -> GraphTenantSource:
    """RUNSVC_TENANT_SOURCE=runsvc.source.graph:create"""
    import logging

    # httpx logs every request at INFO: thousands a second at Graph's pace.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return GraphTenantSource(pool, GraphSettings.from_env())

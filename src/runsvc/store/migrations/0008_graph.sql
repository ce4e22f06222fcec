-- Microsoft Graph as the TenantSource: which Entra tenant a runsvc tenant
-- is, where each of its policies lives in Graph, the pacing shared by all
-- workers, and when a run's tenant is throttled.

-- The customer's Entra tenant (a GUID, or a verified domain such as
-- contoso.onmicrosoft.com). One Entra tenant backs at most one runsvc tenant:
-- Graph's budgets are per Entra tenant, and so is runsvc's pacing.
ALTER TABLE tenants ADD COLUMN graph_tenant_id text;
ALTER TABLE tenants ADD CONSTRAINT tenants_graph_tenant_id_sane CHECK (
    graph_tenant_id ~ '^[0-9A-Za-z][0-9A-Za-z.-]{0,252}[0-9A-Za-z]$');
CREATE UNIQUE INDEX tenants_graph_tenant_id_once ON tenants (lower(graph_tenant_id));

-- A runsvc policy id is its Graph object's id; this says in which
-- collection that object is, so that it can be addressed again. A restore
-- that had to create a deleted policy anew (POST: Graph gives a new id)
-- notes the new object here, so that writing it again updates that one.
CREATE TABLE graph_policies (
    tenant_id   bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    policy_id   text        NOT NULL,
    collection  text        NOT NULL,
    replaced_by text,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, policy_id),
    CONSTRAINT graph_policies_collection_known CHECK (collection IN (
        'configurationPolicies', 'deviceCompliancePolicies', 'deviceConfigurations'))
);

-- Per Entra tenant: the request and write token buckets (in tokens; below
-- zero means calls have reserved slots ahead, each caller waits its turn),
-- and the pause a 429 or 503 imposes on every call to the tenant.
CREATE TABLE graph_pacing (
    graph_tenant_id text PRIMARY KEY,
    requests        double precision NOT NULL,
    writes          double precision NOT NULL,
    refilled_at     timestamptz      NOT NULL DEFAULT now(),
    paused_until    timestamptz,
    -- Throttles in a row without a calm window between them (backoff when
    -- Graph sends no Retry-After), and all of them, for operators.
    throttle_streak integer          NOT NULL DEFAULT 0,
    throttled_total bigint           NOT NULL DEFAULT 0
);

-- Until when the run's tenant is throttled by Graph, as last recorded; the
-- server shows it while it lies in the future.
ALTER TABLE runs ADD COLUMN throttled_until timestamptz;

-- The Dramatiq queue a run was sent to: a worker claims only runs of its
-- own queue (NULL: any queue), so that worker pools on separate queues of
-- one database never take each other's runs.
ALTER TABLE runs ADD COLUMN queue text;

-- Fair scheduling across tenants: the claim looks at each tenant's oldest
-- claimable run and at how many runs each tenant has running.
CREATE INDEX runs_queued_by_tenant ON runs (tenant_external_id, created_at, id)
    WHERE status = 'queued';
CREATE INDEX runs_running_by_tenant ON runs (tenant_external_id, lease_expires_at)
    WHERE status = 'running';

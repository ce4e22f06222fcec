-- Who may call runsvc (api_tokens) and what callers did (audit_events).

-- A bearer token: only a SHA-256 hash of the secret is kept. key_id is the
-- token's public part (rsvc_<key_id>_<secret>): the lookup goes by key_id,
-- then the hashes are compared in constant time by the caller.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL,
    key_id       text        NOT NULL,
    secret_hash  bytea       NOT NULL,
    role         text        NOT NULL,
    -- Either every tenant, or the listed ones (never both, never none).
    all_tenants  boolean     NOT NULL DEFAULT false,
    tenants      text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- Written at most once a minute per token and server (throttled).
    last_used_at timestamptz,
    revoked_at   timestamptz,

    CONSTRAINT api_tokens_key_id_unique UNIQUE (key_id),
    CONSTRAINT api_tokens_role_known CHECK (role IN ('viewer', 'operator')),
    CONSTRAINT api_tokens_name_sane CHECK (length(name) BETWEEN 1 AND 64),
    CONSTRAINT api_tokens_hash_sha256 CHECK (length(secret_hash) = 32),
    CONSTRAINT api_tokens_grants CHECK (all_tenants = (cardinality(tenants) = 0))
);

-- A name names one active token; a revoked token's name may be given again.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- What was done through the API, by which token, to which tenant. Rows are
-- history: they outlive tokens and runs (no foreign keys), and are never
-- updated. `action` grows with the API (run.cancel, ...).
CREATE TABLE audit_events (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at        timestamptz NOT NULL DEFAULT now(),
    action             text        NOT NULL,
    token_name         text        NOT NULL,
    tenant_external_id text        NOT NULL,
    run_id             uuid,
    run_type           text,
    -- StartRun: whether an active run was returned instead of a new one.
    reused             boolean,
    CONSTRAINT audit_events_action_known CHECK (action IN ('run.start', 'run.cancel')),
    CONSTRAINT audit_events_start_says_reused CHECK (action <> 'run.start' OR reused IS NOT NULL)
);

CREATE INDEX audit_events_by_tenant ON audit_events (tenant_external_id, occurred_at, id);

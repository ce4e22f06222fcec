-- The domain the run types act on: tenants, their live policies (the
-- built-in TenantSource), immutable snapshots, backup sets and items, and
-- what restore previews and restores recorded.

CREATE TABLE tenants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The live configuration as the built-in TenantSource adapter keeps it
-- (Microsoft Graph holds it in production).
CREATE TABLE live_policies (
    tenant_id    bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    policy_id    text        NOT NULL,
    policy_type  text        NOT NULL,
    display_name text        NOT NULL,
    payload      jsonb       NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, policy_id)
);

-- Immutable: one row per distinct payload of a policy. Capturing an
-- unchanged payload stores nothing new and only moves last_captured_at.
CREATE TABLE policy_snapshots (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    policy_id        text        NOT NULL,
    policy_type      text        NOT NULL,
    display_name     text        NOT NULL,
    payload          jsonb       NOT NULL,
    payload_hash     text        NOT NULL,
    captured_at      timestamptz NOT NULL DEFAULT now(),
    last_captured_at timestamptz NOT NULL DEFAULT now(),
    captured_by_run  uuid        REFERENCES runs (id) ON DELETE SET NULL,
    CONSTRAINT policy_snapshots_one_per_payload UNIQUE (tenant_id, policy_id, payload_hash)
);

CREATE TABLE backup_sets (
    tenant_id  bigint      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The id callers use as targetObjectId.
    id         text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);

-- A policy is in a set once, pointing at its newest snapshot.
CREATE TABLE backup_items (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     bigint      NOT NULL,
    backup_set_id text        NOT NULL,
    policy_id     text        NOT NULL,
    snapshot_id   uuid        NOT NULL REFERENCES policy_snapshots (id),
    added_at      timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, backup_set_id) REFERENCES backup_sets (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT backup_items_policy_once UNIQUE (tenant_id, backup_set_id, policy_id)
);

CREATE TABLE restore_previews (
    run_id         uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    backup_item_id uuid        NOT NULL REFERENCES backup_items (id) ON DELETE CASCADE,
    policy_id      text        NOT NULL,
    action         text        NOT NULL,
    changed_keys   text[]      NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, backup_item_id),
    CONSTRAINT restore_previews_action_known CHECK (action IN ('create', 'update', 'unchanged'))
);

CREATE TABLE restore_results (
    run_id         uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    backup_item_id uuid        NOT NULL REFERENCES backup_items (id) ON DELETE CASCADE,
    policy_id      text        NOT NULL,
    outcome        text        NOT NULL,
    error_code     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, backup_item_id),
    CONSTRAINT restore_results_outcome_known CHECK (outcome IN ('created', 'updated', 'unchanged', 'rejected')),
    CONSTRAINT restore_results_error_iff_rejected CHECK ((outcome = 'rejected') = (error_code IS NOT NULL))
);

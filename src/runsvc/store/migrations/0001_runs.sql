-- Runs: the source of truth for every run's status, counts and lease.
-- The lifecycle is enforced here (status domain, CHECKs tying finished_at,
-- counts and safe_error to the status); the code cannot break it.

CREATE TABLE runs (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_external_id text        NOT NULL,
    run_type           text        NOT NULL,
    target_object_id   text,
    payload_hash       text,
    -- The caller's work list (deduplicated, order kept); NULL means the run
    -- type's default set, resolved when the run starts.
    requested_item_ids text[],
    status             text        NOT NULL DEFAULT 'queued',
    total              integer     NOT NULL DEFAULT 0,
    succeeded          integer     NOT NULL DEFAULT 0,
    failed             integer     NOT NULL DEFAULT 0,
    -- True once the run's items are written to run_items.
    items_resolved     boolean     NOT NULL DEFAULT false,
    safe_error         jsonb,
    -- Bumped by every change; the AFTER UPDATE trigger notifies watchers.
    version            bigint      NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    -- Who executes the run, and until when, unless renewed.
    lease_owner        text,
    lease_expires_at   timestamptz,
    attempts           integer     NOT NULL DEFAULT 0,
    -- When the run's message is sent again if nobody has taken it by then
    -- (the outbox part of the row: a lost message is never fatal).
    dispatch_due_at    timestamptz NOT NULL,
    dispatch_count     integer     NOT NULL DEFAULT 1,

    CONSTRAINT runs_run_type_known CHECK (run_type IN (
        'backup_set_add_policies', 'restore_execute', 'restore_preview', 'snapshot_capture')),
    CONSTRAINT runs_status_known CHECK (status IN (
        'queued', 'running', 'succeeded', 'partial', 'failed')),
    CONSTRAINT runs_counts_not_negative CHECK (total >= 0 AND succeeded >= 0 AND failed >= 0),
    CONSTRAINT runs_counts_within_total CHECK (succeeded + failed <= total),
    CONSTRAINT runs_terminal_counts_complete CHECK (
        status IN ('queued', 'running') OR succeeded + failed = total),
    CONSTRAINT runs_finished_iff_terminal CHECK (
        (status IN ('succeeded', 'partial', 'failed')) = (finished_at IS NOT NULL)),
    CONSTRAINT runs_safe_error_iff_unsuccessful CHECK (
        (status IN ('partial', 'failed')) = (safe_error IS NOT NULL)),
    CONSTRAINT runs_running_has_lease CHECK (
        status <> 'running' OR (lease_owner IS NOT NULL AND started_at IS NOT NULL))
);

-- StartRun's dedupe: at most one active run per key, enforced by the
-- database so that concurrent identical calls yield exactly one run.
CREATE UNIQUE INDEX runs_one_active_per_key ON runs (
    tenant_external_id, run_type, coalesce(target_object_id, ''), coalesce(payload_hash, ''))
    WHERE status IN ('queued', 'running');

-- The reaper's two scans stay small whatever the table size.
CREATE INDEX runs_queued_dispatch_due ON runs (dispatch_due_at) WHERE status = 'queued';
CREATE INDEX runs_running_lease_expiry ON runs (lease_expires_at) WHERE status = 'running';

-- One row per item of a run; the outcome is written exactly once.
CREATE TABLE run_items (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position    integer     NOT NULL,
    item_id     text        NOT NULL,
    outcome     text,
    error_code  text,
    -- What happened to the item, per run type (for example the action of a
    -- restore preview); never raw exception text.
    detail      jsonb,
    finished_at timestamptz,
    PRIMARY KEY (run_id, position),
    CONSTRAINT run_items_item_once UNIQUE (run_id, item_id),
    CONSTRAINT run_items_outcome_known CHECK (outcome IN ('succeeded', 'failed')),
    CONSTRAINT run_items_error_iff_failed CHECK (
        (outcome IS NULL AND error_code IS NULL AND finished_at IS NULL)
        OR (outcome = 'succeeded' AND error_code IS NULL AND finished_at IS NOT NULL)
        OR (outcome = 'failed' AND error_code IS NOT NULL AND finished_at IS NOT NULL))
);

-- Every change of a run (a new version) wakes the watchers of every server
-- process: one NOTIFY per committed change, delivered at commit.
CREATE FUNCTION runs_notify_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('runsvc_run_changed', NEW.id::text || ':' || NEW.version::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER runs_notify_change
    AFTER UPDATE ON runs
    FOR EACH ROW
    WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION runs_notify_change();

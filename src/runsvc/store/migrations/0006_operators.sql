-- Operators' extensions: ListRuns, RetryRun and their audit.

-- ListRuns pages a tenant's runs newest first with a keyset on
-- (created_at, id): one index range per page, whatever the table size.
CREATE INDEX runs_by_tenant_newest ON runs (tenant_external_id, created_at DESC, id DESC);

-- RetryRun: the run a run retries. A retried run deleted by retention
-- leaves its retries unlinked, never blocked; the partial index keeps that
-- delete from scanning runs.
ALTER TABLE runs ADD COLUMN retry_of_run_id uuid REFERENCES runs (id) ON DELETE SET NULL;
CREATE INDEX runs_retry_of ON runs (retry_of_run_id) WHERE retry_of_run_id IS NOT NULL;

-- RetryRun is audited like StartRun: new or reused.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_known;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_known
    CHECK (action IN ('run.start', 'run.cancel', 'run.retry'));
ALTER TABLE audit_events ADD CONSTRAINT audit_events_retry_says_reused
    CHECK (action <> 'run.retry' OR reused IS NOT NULL);

-- Execution engine v2: when the reaper last sent a run's message, and the
-- indexes that keep retention's deletes small whatever the table sizes.

-- Set by the reaper after a send went out (the send comes first).
ALTER TABLE runs ADD COLUMN dispatched_at timestamptz;

CREATE INDEX runs_finished_at ON runs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);
-- Deleting a run sets captured_by_run to NULL in its snapshots: without an
-- index each deleted run would scan every snapshot.
CREATE INDEX policy_snapshots_captured_by_run ON policy_snapshots (captured_by_run)
    WHERE captured_by_run IS NOT NULL;
-- Restores page through a backup set in the order its items were added.
CREATE INDEX backup_items_by_set_added ON backup_items (tenant_id, backup_set_id, added_at, policy_id);

-- Every query of runsvc, each under a `-- name: <operation>` header and
-- loaded once by runsvc.store.queries. Operations are named entity first.
-- Parameters are psycopg named placeholders.

-- name: run_insert_or_reuse
-- StartRun in one statement: checks the tenant, creates a queued run or
-- finds the active run with the same dedupe key, and writes the audit row.
-- The partial unique index arbitrates concurrent callers. Always one row:
-- tenant_known false means an unknown tenant (nothing written); a NULL id
-- means the conflicting run committed after this statement's snapshot (or
-- finished meanwhile), and the caller runs it again. The columns after
-- `reused` are those of run_get, in its order. The request id and trace
-- context of the call are kept with the run, for the worker's lines and spans.
WITH tenant AS (
    SELECT 1 FROM tenants WHERE external_id = %(tenant)s
),
inserted AS (
    INSERT INTO runs (id, tenant_external_id, run_type, target_object_id, payload_hash,
                      requested_item_ids, total, dispatch_due_at, request_id, trace_context,
                      queue)
    SELECT %(run_id)s, %(tenant)s, %(run_type)s, %(target_object_id)s, %(payload_hash)s,
           %(item_ids)s, coalesce(cardinality(%(item_ids)s::text[]), 0),
           now() + make_interval(secs => %(redispatch_after)s),
           %(request_id)s, %(trace_context)s, %(queue)s
    FROM tenant
    ON CONFLICT (tenant_external_id, run_type, coalesce(target_object_id, ''), coalesce(payload_hash, ''))
        WHERE status IN ('queued', 'running')
        DO NOTHING
    RETURNING id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
              version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
              throttled_until
),
chosen AS (
    SELECT false AS reused, inserted.* FROM inserted
    UNION ALL
    SELECT true, id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
           version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
           throttled_until
    FROM runs
    WHERE NOT EXISTS (SELECT 1 FROM inserted)
      AND EXISTS (SELECT 1 FROM tenant)
      AND tenant_external_id = %(tenant)s
      AND run_type = %(run_type)s
      AND coalesce(target_object_id, '') = coalesce(%(target_object_id)s, '')
      AND coalesce(payload_hash, '') = coalesce(%(payload_hash)s, '')
      AND status IN ('queued', 'running')
),
audited AS (
    INSERT INTO audit_events (action, token_name, tenant_external_id, run_id, run_type, reused)
    SELECT 'run.start', %(token_name)s, tenant_external_id, id, run_type, reused FROM chosen
)
-- (run_message_enqueue's CTE goes here with the Postgres broker)
SELECT EXISTS (SELECT 1 FROM tenant) AS tenant_known, chosen.*
FROM (VALUES (1)) AS one LEFT JOIN chosen ON true;

-- name: run_message_enqueue
-- With the Postgres broker, this CTE joins the WITH list of
-- run_insert_or_reuse and run_retry_insert_or_reuse (runsvc.store.runs
-- composes them): the new run's Dramatiq message is
-- written by the same statement, so a committed run always has its message
-- and a reused run gets none. The table is dramatiq-postgres's (schema
-- "dramatiq", the columns its ENQUEUE query writes); the consumers' wake-up
-- NOTIFY is sent after commit, coalesced (channel_notify). Tests run a
-- real worker on messages written here.
enqueued AS (
    INSERT INTO dramatiq.queue (queue_name, message_id, "state", message)
    SELECT %(message_queue)s, %(message_id)s, 'queued', %(message)s FROM inserted
)

-- name: channel_notify
-- Wakes the listeners of one channel, from another connection: the
-- Dramatiq consumers of a queue after runs were committed (dramatiq-postgres
-- LISTENs on its queue's channel; they also poll, so a lost wake-up only
-- delays a run), and the watch hub's own channel, its ping (a LISTEN
-- connection that does not hear it in time is half-open and replaced).
SELECT pg_notify(%(channel)s, '');

-- name: run_get
-- A run as its tenant and type address it; another tenant's or type's run
-- is not found. The columns callers see, never the work list.
SELECT id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
       version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
       throttled_until
FROM runs
WHERE id = %(run_id)s AND tenant_external_id = %(tenant)s AND run_type = %(run_type)s;

-- name: run_get_many
-- The watch hub's refresh: every changed run of one wake-up at once, with
-- run_get's columns.
SELECT id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
       version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
       throttled_until
FROM runs
WHERE id = ANY(%(run_ids)s::uuid[]);

-- name: run_claim_next
-- Takes the next run for one execution, fairly across tenants (SPEC §9):
-- a queued run, or a running one whose lease expired or was given back (its
-- worker died or stopped), of a tenant with fewer than `max_running` runs
-- running; among those, the tenant with the fewest running runs first, then
-- the oldest run; runs of this worker's queue only (the limit counts the
-- tenant's runs on every queue). So one tenant's backlog takes one slot at a time while
-- other tenants wait, and runs beyond a tenant's limit stay queued (no
-- worker thread waits for them). Run in a transaction that holds the claim
-- lock (runs.run_claim_next), so that two claims never both see a free slot.
-- Its clock is statement_timestamp(), not now(): now() is when the
-- transaction began, before it waited for the claim lock: it would date
-- started_at before the finish of the run whose slot this claim takes,
-- and shorten the lease by the wait.
-- The claim resets the dispatch backoff: the run is due again exactly when
-- its lease runs out. The one place that decides which run a worker takes.
-- Explicit columns: requested_item_ids (up to 10,000 ids) stays in the row.
WITH busy AS (
    SELECT tenant_external_id, count(*) AS running
    FROM runs
    WHERE status = 'running' AND lease_expires_at > statement_timestamp()
    GROUP BY tenant_external_id
), heads AS (
    SELECT DISTINCT ON (tenant_external_id) id, tenant_external_id, created_at
    FROM runs
    WHERE (status = 'queued' OR (status = 'running' AND lease_expires_at <= statement_timestamp()))
      AND (queue IS NULL OR queue = %(queue)s)
    ORDER BY tenant_external_id, created_at, id
), chosen AS (
    SELECT heads.id
    FROM heads LEFT JOIN busy USING (tenant_external_id)
    WHERE coalesce(busy.running, 0) < %(max_running)s
    ORDER BY coalesce(busy.running, 0), heads.created_at, heads.id
    LIMIT 1
)
UPDATE runs
SET status = 'running',
    started_at = coalesce(started_at, statement_timestamp()),
    lease_owner = %(owner)s,
    lease_expires_at = statement_timestamp() + make_interval(secs => %(lease_seconds)s),
    dispatch_due_at = statement_timestamp() + make_interval(secs => %(lease_seconds)s),
    dispatch_count = 0,
    attempts = attempts + 1,
    version = version + 1
FROM chosen
WHERE runs.id = chosen.id
  AND (runs.status = 'queued' OR (runs.status = 'running' AND runs.lease_expires_at <= statement_timestamp()))
RETURNING runs.id, tenant_external_id, run_type, target_object_id, items_resolved,
          requested_item_ids IS NOT NULL AS items_requested, attempts, total, succeeded,
          failed, cancel_requested_at IS NOT NULL AS cancel_requested, request_id,
          trace_context;

-- name: run_lease_renew
-- Extends the lease while the owner still holds it; no row means it is lost.
-- The run stays not due for dispatch as long as the lease lasts. One short
-- statement: it waits at most for a batch's commit, never for a batch.
UPDATE runs
SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    dispatch_due_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running'
RETURNING cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: run_lease_release
-- Gives the run back at once, due for dispatch now. `refund` takes back the
-- attempt the claim counted: a cooperative stop is not a failed attempt (an
-- unexpected error is, so that a run that always fails ends).
UPDATE runs
SET lease_expires_at = now(),
    dispatch_due_at = now(),
    attempts = attempts - CASE WHEN %(refund)s THEN 1 ELSE 0 END
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running'
RETURNING id;

-- name: run_dispatch_due_now
-- A message for the run could not be sent (or was refused by a stopping
-- worker): the reaper sends it at its next pass. A run whose lease is held
-- stays not due (the reaper also checks the lease).
UPDATE runs SET dispatch_due_at = now()
WHERE id = %(run_id)s AND status IN ('queued', 'running');

-- name: run_items_reset
-- Forgets a work list whose resolution an earlier attempt did not finish.
DELETE FROM run_items ri
USING runs r
WHERE ri.run_id = %(run_id)s AND r.id = ri.run_id
  AND r.lease_owner = %(owner)s AND r.status = 'running' AND NOT r.items_resolved;

-- name: run_items_insert_requested
-- The caller's work list, straight from the run row into run_items: the
-- ids never travel to the worker. Sets total; no row when the lease is lost.
WITH run AS (
    SELECT requested_item_ids FROM runs
    WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running'
      AND NOT items_resolved AND requested_item_ids IS NOT NULL
    FOR UPDATE
), items AS (
    INSERT INTO run_items (run_id, position, item_id)
    SELECT %(run_id)s, t.position - 1, t.item_id
    FROM run, unnest(run.requested_item_ids) WITH ORDINALITY AS t(item_id, position)
    RETURNING 1
)
UPDATE runs
SET total = (SELECT count(*) FROM items),
    items_resolved = true,
    version = version + 1
FROM run
WHERE runs.id = %(run_id)s
RETURNING runs.total;

-- name: run_items_append
-- One page of the default work list, at positions from `first_position`;
-- an id listed already is skipped. The caller's transaction fences it.
INSERT INTO run_items (run_id, position, item_id)
SELECT %(run_id)s, %(first_position)s::integer + t.ord - 1, t.item_id
FROM unnest(%(item_ids)s::text[]) WITH ORDINALITY AS t(item_id, ord)
ON CONFLICT DO NOTHING;

-- name: run_items_resolved
-- The work list is complete: total is known from here on.
UPDATE runs
SET total = %(total)s,
    items_resolved = true,
    version = version + 1
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running' AND NOT items_resolved
RETURNING total;

-- name: run_items_pending_page
-- The next page of the work list: items without an outcome among the
-- positions after `after`, at most `limit` of them. A bounded range of the
-- primary key, whatever the table's statistics say: a page costs the same
-- however long the run is (positions are dense, so a range holds a page).
SELECT position, item_id FROM run_items
WHERE run_id = %(run_id)s AND position > %(after)s::integer
  AND position <= %(after)s::integer + %(limit)s::integer
  AND outcome IS NULL
ORDER BY position;

-- name: run_items_next_pending
-- Where the work list goes on after `after` (a resumed run, or a range
-- whose items all have outcomes); NULL when every item has one.
SELECT min(position) FROM run_items
WHERE run_id = %(run_id)s AND position > %(after)s::integer AND outcome IS NULL;

-- name: run_items_record
-- Records a batch of outcomes; an outcome already recorded is kept (each
-- item's outcome is written exactly once).
UPDATE run_items AS ri
SET outcome = b.outcome, error_code = b.error_code, detail = nullif(b.detail, 'null'),
    finished_at = now()
-- (JSON values travel as one JSON array: far cheaper than a jsonb[] to send)
FROM ROWS FROM (unnest(%(positions)s::integer[]), unnest(%(outcomes)s::text[]),
                unnest(%(error_codes)s::text[]), jsonb_array_elements(%(details)s::jsonb))
     AS b(position, outcome, error_code, detail)
WHERE ri.run_id = %(run_id)s
  -- The batch's range of the primary key: a bounded scan, whatever the
  -- table's statistics say.
  AND ri.position BETWEEN %(first)s::integer AND %(last)s::integer
  AND ri.position = b.position AND ri.outcome IS NULL
RETURNING ri.outcome;

-- name: run_items_fail_pending
-- A run-level error or a cancel fails the items without an outcome, a
-- bounded range of positions at a time (a short statement however long
-- the run): from `first` on, `span` positions.
UPDATE run_items
SET outcome = 'failed', error_code = %(error_code)s, finished_at = now()
WHERE run_id = %(run_id)s
  AND position >= %(first)s::integer AND position < %(first)s::integer + %(span)s::integer
  AND outcome IS NULL;

-- name: run_items_failed_sample
SELECT item_id, error_code FROM run_items
WHERE run_id = %(run_id)s AND outcome = 'failed'
ORDER BY position
LIMIT %(limit)s;

-- name: run_items_failed_codes
SELECT error_code, count(*) AS n FROM run_items
WHERE run_id = %(run_id)s AND outcome = 'failed'
GROUP BY error_code
ORDER BY error_code;

-- name: run_record_progress
-- Adds a batch's outcomes to the counts: one version and one notification
-- per batch, not per item. The owner fence of every batch transaction: no
-- row means another worker took the run, and the caller rolls back. It
-- also renews the lease, and says whether a cancel was asked for.
UPDATE runs
SET succeeded = succeeded + %(succeeded)s,
    failed = failed + %(failed)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    dispatch_due_at = now() + make_interval(secs => %(lease_seconds)s),
    version = version + 1
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running'
RETURNING total, succeeded, failed, cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: run_finish
-- Ends the run. Items without an outcome count as failed (a run-level
-- error), so that succeeded + failed = total always holds at the end.
UPDATE runs
SET status = %(status)s,
    failed = total - succeeded,
    safe_error = %(safe_error)s,
    finished_at = now(),
    lease_owner = NULL,
    lease_expires_at = NULL,
    version = version + 1
WHERE id = %(run_id)s AND lease_owner = %(owner)s AND status = 'running'
RETURNING id, tenant_external_id, run_type, target_object_id, payload_hash, status, total,
          succeeded, failed, items_resolved, safe_error, version, created_at, started_at,
          finished_at, attempts;

-- name: run_dispatch_take
-- The reaper's pick: runs nobody executes, queued past their dispatch time
-- (the message may be lost) or running with an expired lease (the worker
-- died or stopped). They are held for `hold` seconds, so that concurrent
-- reapers do not send them too; the reaper sends first, then records the
-- send (run_dispatch_sent) or leaves the run due (run_dispatch_due_again).
-- Runs of the reaper's own queue only, the ones its workers may claim
-- (run_claim_next): a reaper of another pool on the same database would
-- send the message where no worker takes the run, and back off its resend.
WITH due AS (
    SELECT id FROM runs
    WHERE ((status = 'queued' AND dispatch_due_at <= now())
           OR (status = 'running' AND lease_expires_at <= now() AND dispatch_due_at <= now()))
      AND (queue IS NULL OR queue = %(queue)s)
    ORDER BY dispatch_due_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE runs
SET dispatch_due_at = now() + make_interval(secs => %(hold)s)
FROM due
WHERE runs.id = due.id
RETURNING runs.id;

-- name: run_dispatch_sent
-- The messages went out: the next one only after a backoff, in case it is
-- lost too. A run a worker claimed meanwhile keeps the claim's timing.
UPDATE runs
SET dispatch_due_at = now() + make_interval(
        secs => %(redispatch_after)s * power(2, least(dispatch_count, 6))),
    dispatch_count = dispatch_count + 1,
    dispatched_at = now()
WHERE id = ANY(%(run_ids)s::uuid[])
  AND (status = 'queued' OR (status = 'running' AND lease_expires_at <= now()));

-- name: run_dispatch_due_again
-- The messages could not be sent: the runs stay due for the next pass.
UPDATE runs
SET dispatch_due_at = now()
WHERE id = ANY(%(run_ids)s::uuid[])
  AND (status = 'queued' OR (status = 'running' AND lease_expires_at <= now()));

-- name: run_items_delete_expired
-- Retention, in small batches: items of runs finished before the cutoff.
DELETE FROM run_items ri
USING (
    SELECT i.run_id, i.position
    FROM runs r JOIN run_items i ON i.run_id = r.id
    WHERE r.finished_at < now() - %(days)s * interval '1 day'
    LIMIT %(limit)s
) old
WHERE ri.run_id = old.run_id AND ri.position = old.position;

-- name: restore_previews_delete_expired
DELETE FROM restore_previews p
USING (
    SELECT x.run_id, x.backup_item_id
    FROM runs r JOIN restore_previews x ON x.run_id = r.id
    WHERE r.finished_at < now() - %(days)s * interval '1 day'
    LIMIT %(limit)s
) old
WHERE p.run_id = old.run_id AND p.backup_item_id = old.backup_item_id;

-- name: restore_results_delete_expired
DELETE FROM restore_results p
USING (
    SELECT x.run_id, x.backup_item_id
    FROM runs r JOIN restore_results x ON x.run_id = r.id
    WHERE r.finished_at < now() - %(days)s * interval '1 day'
    LIMIT %(limit)s
) old
WHERE p.run_id = old.run_id AND p.backup_item_id = old.backup_item_id;

-- name: run_delete_expired
-- Runs finished before the cutoff whose per-item rows are gone already
-- (so the cascade is small); their dispatch records are part of the row.
DELETE FROM runs
WHERE id IN (
    SELECT r.id FROM runs r
    WHERE r.finished_at < now() - %(days)s * interval '1 day'
      AND NOT EXISTS (SELECT 1 FROM run_items i WHERE i.run_id = r.id)
      AND NOT EXISTS (SELECT 1 FROM restore_previews p WHERE p.run_id = r.id)
      AND NOT EXISTS (SELECT 1 FROM restore_results x WHERE x.run_id = r.id)
    ORDER BY r.finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
);

-- name: audit_delete_expired
-- Audit events have their own, longer retention.
DELETE FROM audit_events
WHERE id IN (
    SELECT id FROM audit_events
    WHERE occurred_at < now() - %(days)s * interval '1 day'
    ORDER BY occurred_at
    LIMIT %(limit)s
);

-- name: tenant_get_id
SELECT id FROM tenants WHERE external_id = %(tenant)s;

-- name: tenant_upsert
INSERT INTO tenants (external_id) VALUES (%(tenant)s)
ON CONFLICT (external_id) DO UPDATE SET external_id = EXCLUDED.external_id
RETURNING id;

-- name: live_policy_upsert_by_tenant_id
-- Loads live policies (runsvc seed), a batch per statement.
INSERT INTO live_policies (tenant_id, policy_id, policy_type, display_name, payload)
SELECT %(tenant_id)s, p.policy_id, p.policy_type, p.display_name, p.payload
FROM ROWS FROM (unnest(%(policy_ids)s::text[]), unnest(%(policy_types)s::text[]),
                unnest(%(display_names)s::text[]), jsonb_array_elements(%(payloads)s::jsonb))
     AS p(policy_id, policy_type, display_name, payload)
ON CONFLICT (tenant_id, policy_id) DO UPDATE
SET policy_type = EXCLUDED.policy_type,
    display_name = EXCLUDED.display_name,
    payload = EXCLUDED.payload,
    updated_at = now();

-- name: live_policy_page_ids
-- One page of a tenant's policy ids after `after` ('' for the first), by
-- the primary key: each page costs the same however far the listing is.
SELECT lp.policy_id
FROM live_policies lp
WHERE lp.tenant_id = (SELECT id FROM tenants WHERE external_id = %(tenant)s)
  AND lp.policy_id > %(after)s
ORDER BY lp.policy_id
LIMIT %(limit)s;

-- name: live_policy_get_many
SELECT lp.policy_id, lp.policy_type, lp.display_name, lp.payload
FROM live_policies lp
WHERE lp.tenant_id = (SELECT id FROM tenants WHERE external_id = %(tenant)s)
  AND lp.policy_id = ANY(%(policy_ids)s::text[]);

-- name: live_policy_upsert_many
-- Writes whole policies: writing the same batch twice leaves what writing
-- it once does (the built-in source's writes are idempotent). No row comes
-- back when the tenant is unknown.
INSERT INTO live_policies (tenant_id, policy_id, policy_type, display_name, payload)
SELECT t.id, p.policy_id, p.policy_type, p.display_name, p.payload
FROM tenants t,
     ROWS FROM (unnest(%(policy_ids)s::text[]), unnest(%(policy_types)s::text[]),
                unnest(%(display_names)s::text[]), jsonb_array_elements(%(payloads)s::jsonb))
     AS p(policy_id, policy_type, display_name, payload)
WHERE t.external_id = %(tenant)s
ON CONFLICT (tenant_id, policy_id) DO UPDATE
SET policy_type = EXCLUDED.policy_type,
    display_name = EXCLUDED.display_name,
    payload = EXCLUDED.payload,
    updated_at = now()
RETURNING policy_id;

-- name: policy_snapshot_capture_many
-- Stores a batch of snapshots; a payload a policy had already stores nothing
-- new (only last_captured_at moves). Returns, per policy, the snapshot that
-- holds its payload and whether it is new.
INSERT INTO policy_snapshots (tenant_id, policy_id, policy_type, display_name, payload,
                              payload_hash, captured_by_run)
SELECT %(tenant_id)s, p.policy_id, p.policy_type, p.display_name, p.payload, p.payload_hash,
       %(run_id)s
FROM ROWS FROM (unnest(%(policy_ids)s::text[]), unnest(%(policy_types)s::text[]),
                unnest(%(display_names)s::text[]), jsonb_array_elements(%(payloads)s::jsonb),
                unnest(%(payload_hashes)s::text[]))
     AS p(policy_id, policy_type, display_name, payload, payload_hash)
ON CONFLICT ON CONSTRAINT policy_snapshots_one_per_payload DO UPDATE
SET last_captured_at = now()
RETURNING policy_id, id, (xmax = 0) AS created;

-- name: backup_set_exists
SELECT 1 FROM backup_sets WHERE tenant_id = %(tenant_id)s AND id = %(backup_set_id)s;

-- name: backup_set_upsert
INSERT INTO backup_sets (tenant_id, id, name) VALUES (%(tenant_id)s, %(backup_set_id)s, %(name)s)
ON CONFLICT (tenant_id, id) DO UPDATE SET name = EXCLUDED.name;

-- name: backup_item_upsert_many
-- Adding a policy twice keeps one entry, pointing at the newest snapshot.
INSERT INTO backup_items (tenant_id, backup_set_id, policy_id, snapshot_id)
SELECT %(tenant_id)s, %(backup_set_id)s, b.policy_id, b.snapshot_id
FROM unnest(%(policy_ids)s::text[], %(snapshot_ids)s::uuid[]) AS b(policy_id, snapshot_id)
ON CONFLICT ON CONSTRAINT backup_items_policy_once DO UPDATE
SET snapshot_id = EXCLUDED.snapshot_id, updated_at = now()
RETURNING policy_id, id;

-- name: backup_item_ids_page
-- A page of a set's item ids in the order they were added, after the
-- (added_at, policy_id) cursor ('-infinity', '' for the first page); by an
-- index, so every page costs the same.
SELECT id::text, added_at, policy_id FROM backup_items
WHERE tenant_id = %(tenant_id)s AND backup_set_id = %(backup_set_id)s
  AND (added_at, policy_id) > (%(after_added)s::timestamptz, %(after_policy)s::text)
ORDER BY added_at, policy_id
LIMIT %(limit)s;

-- name: backup_items_get_many
-- Backup items of the set with the payloads of their snapshots. Found by
-- their primary keys first (the set's own index would scan the whole set).
WITH wanted AS MATERIALIZED (
    SELECT * FROM backup_items WHERE id = ANY(%(backup_item_ids)s::uuid[])
)
SELECT bi.id, bi.policy_id, s.policy_type, s.display_name, s.payload
FROM wanted bi JOIN policy_snapshots s ON s.id = bi.snapshot_id
WHERE bi.tenant_id = %(tenant_id)s AND bi.backup_set_id = %(backup_set_id)s;

-- name: restore_preview_record_many
INSERT INTO restore_previews (run_id, backup_item_id, policy_id, action, changed_keys)
SELECT %(run_id)s, r.backup_item_id, r.policy_id, r.action,
       ARRAY(SELECT jsonb_array_elements_text(r.changed_keys))
FROM ROWS FROM (unnest(%(backup_item_ids)s::uuid[]), unnest(%(policy_ids)s::text[]),
                unnest(%(actions)s::text[]), jsonb_array_elements(%(changed_keys)s::jsonb))
     AS r(backup_item_id, policy_id, action, changed_keys)
ON CONFLICT (run_id, backup_item_id) DO UPDATE
SET action = EXCLUDED.action, changed_keys = EXCLUDED.changed_keys;

-- name: restore_result_record_many
INSERT INTO restore_results (run_id, backup_item_id, policy_id, outcome, error_code)
SELECT %(run_id)s, r.backup_item_id, r.policy_id, r.outcome, r.error_code
FROM unnest(%(backup_item_ids)s::uuid[], %(policy_ids)s::text[], %(outcomes)s::text[],
            %(error_codes)s::text[]) AS r(backup_item_id, policy_id, outcome, error_code)
ON CONFLICT (run_id, backup_item_id) DO UPDATE
SET outcome = EXCLUDED.outcome, error_code = EXCLUDED.error_code;

-- name: token_insert
INSERT INTO api_tokens (name, key_id, secret_hash, role, all_tenants, tenants)
VALUES (%(name)s, %(key_id)s, %(secret_hash)s, %(role)s, %(all_tenants)s, %(tenants)s)
RETURNING id;

-- name: token_get_active_by_key
-- The active token a presented bearer token claims to be; the caller
-- compares secret_hash in constant time.
SELECT id, name, secret_hash, role, all_tenants, tenants, last_used_at
FROM api_tokens
WHERE key_id = %(key_id)s AND revoked_at IS NULL;

-- name: token_touch
-- Records use, at most once per `touch_after` seconds (no write per call).
UPDATE api_tokens
SET last_used_at = now()
WHERE id = %(id)s
  AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %(touch_after)s));

-- name: token_list
SELECT name, role, all_tenants, tenants, created_at, last_used_at, revoked_at
FROM api_tokens
ORDER BY revoked_at IS NOT NULL, name, created_at;

-- name: token_revoke
UPDATE api_tokens SET revoked_at = now()
WHERE name = %(name)s AND revoked_at IS NULL
RETURNING id;

-- name: audit_insert
INSERT INTO audit_events (action, token_name, tenant_external_id, run_id, run_type, reused)
VALUES (%(action)s, %(token_name)s, %(tenant)s, %(run_id)s, %(run_type)s, %(reused)s);

-- name: audit_list
SELECT occurred_at, action, token_name, tenant_external_id, run_id, run_type, reused
FROM audit_events
WHERE tenant_external_id = %(tenant)s
ORDER BY occurred_at DESC, id DESC
LIMIT %(limit)s;

-- --- Operators' extensions: list, cancel, retry ---------------------------

-- name: run_list
-- One page of a tenant's runs, newest first, after the keyset position
-- (created_at, id) of the previous page's last run. The position and the
-- created range are index conditions even in a generic plan (coalesce, not
-- "IS NULL OR"); type, status and target filter the rows of that range.
-- The columns of run_get.
SELECT id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
       version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
       throttled_until
FROM runs
WHERE tenant_external_id = %(tenant)s
  AND (created_at, id) < (coalesce(%(after_created_at)s::timestamptz, 'infinity'),
                          coalesce(%(after_id)s::uuid, 'ffffffff-ffff-ffff-ffff-ffffffffffff'))
  AND created_at >= coalesce(%(created_after)s::timestamptz, '-infinity')
  AND created_at < coalesce(%(created_before)s::timestamptz, 'infinity')
  AND (%(run_types)s::text[] IS NULL OR run_type = ANY(%(run_types)s::text[]))
  AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
  AND (%(target_object_id)s::text IS NULL OR target_object_id = %(target_object_id)s::text)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s;

-- name: run_items_page
-- One page of a run's items in order, after the previous page's last
-- position; an item without an outcome is 'pending'.
SELECT position, item_id, outcome, error_code, detail, finished_at FROM run_items
WHERE run_id = %(run_id)s
  AND position > %(after_position)s
  AND (%(outcomes)s::text[] IS NULL OR coalesce(outcome, 'pending') = ANY(%(outcomes)s::text[]))
ORDER BY position
LIMIT %(limit)s;

-- name: run_cancel
-- CancelRun in one statement that decides by the status it finds under the
-- row lock, so a worker claiming the run at the same moment is either
-- before it (the run is running: it gets cancel_requested_at, and the worker
-- stops at its next batch boundary) or after it (the run is failed: the
-- claim finds nothing). A queued run ends failed/CANCELLED at once: items
-- it never attempted fail with CANCELLED (its requested items are written
-- as such; items written before, when it ran earlier, keep their outcome),
-- so succeeded + failed = total. Asking again changes nothing.
WITH cancelled AS (
    UPDATE runs
    SET status = CASE WHEN status = 'queued' THEN 'failed' ELSE status END,
        failed = CASE WHEN status = 'queued' THEN total - succeeded ELSE failed END,
        safe_error = CASE WHEN status = 'queued' THEN %(safe_error)s::jsonb ELSE safe_error END,
        finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
        items_resolved = items_resolved OR status = 'queued',
        lease_owner = CASE WHEN status = 'queued' THEN NULL ELSE lease_owner END,
        lease_expires_at = CASE WHEN status = 'queued' THEN NULL ELSE lease_expires_at END,
        cancel_requested_at = coalesce(cancel_requested_at, now()),
        version = version + CASE
            WHEN status = 'queued' OR cancel_requested_at IS NULL THEN 1 ELSE 0 END
    WHERE id = %(run_id)s AND tenant_external_id = %(tenant)s AND run_type = %(run_type)s
      AND status IN ('queued', 'running')
    RETURNING *
),
requested AS (
    INSERT INTO run_items (run_id, position, item_id, outcome, error_code, finished_at)
    SELECT c.id, t.position - 1, t.item_id, 'failed', %(error_code)s, now()
    FROM cancelled c,
         unnest(c.requested_item_ids) WITH ORDINALITY AS t(item_id, position)
    WHERE c.status = 'failed'
    ON CONFLICT (run_id, position) DO NOTHING
),
written AS (
    UPDATE run_items
    SET outcome = 'failed', error_code = %(error_code)s, finished_at = now()
    WHERE run_id IN (SELECT id FROM cancelled WHERE status = 'failed') AND outcome IS NULL
)
SELECT id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
       version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
       throttled_until
FROM cancelled;

-- name: run_retry_insert_or_reuse
-- RetryRun: a queued run (id %(run_id)s) of the retried run's tenant, type,
-- target and payload hash over its failed items, copied here (any number of
-- them); a run that failed before its items were known retries what it was
-- asked. Dedupe as in run_insert_or_reuse: no row means the conflicting
-- active run was not visible yet, and the caller runs it again. Returns
-- `reused`, then run_get's columns.
WITH source AS (
    SELECT s.*,
           CASE WHEN s.items_resolved THEN (
               SELECT coalesce(array_agg(ri.item_id ORDER BY ri.position), '{}')
               FROM run_items ri
               WHERE ri.run_id = s.id AND ri.outcome = 'failed')
           ELSE s.requested_item_ids END AS retry_item_ids
    FROM runs s
    WHERE s.id = %(source_run_id)s AND s.tenant_external_id = %(tenant)s
      AND s.run_type = %(run_type)s
      AND s.status IN ('succeeded', 'partial', 'failed')
),
inserted AS (
    INSERT INTO runs (id, tenant_external_id, run_type, target_object_id, payload_hash,
                      requested_item_ids, total, dispatch_due_at, retry_of_run_id,
                      request_id, trace_context, queue)
    SELECT %(run_id)s, tenant_external_id, run_type, target_object_id, payload_hash,
           retry_item_ids, coalesce(cardinality(retry_item_ids), 0),
           now() + make_interval(secs => %(redispatch_after)s), id,
           %(request_id)s, %(trace_context)s, %(queue)s
    FROM source
    ON CONFLICT (tenant_external_id, run_type, coalesce(target_object_id, ''), coalesce(payload_hash, ''))
        WHERE status IN ('queued', 'running')
        DO NOTHING
    RETURNING id, tenant_external_id, run_type, status, total, succeeded, failed, safe_error,
              version, created_at, started_at, finished_at, retry_of_run_id, cancel_requested_at,
              throttled_until
)
-- (run_message_enqueue's CTE goes here with the Postgres broker)
SELECT false AS reused, inserted.* FROM inserted
UNION ALL
SELECT true, runs.id, runs.tenant_external_id, runs.run_type, runs.status, runs.total,
       runs.succeeded, runs.failed, runs.safe_error, runs.version, runs.created_at,
       runs.started_at, runs.finished_at, runs.retry_of_run_id, runs.cancel_requested_at,
       runs.throttled_until
FROM runs, source
WHERE NOT EXISTS (SELECT 1 FROM inserted)
  AND runs.tenant_external_id = source.tenant_external_id
  AND runs.run_type = source.run_type
  AND coalesce(runs.target_object_id, '') = coalesce(source.target_object_id, '')
  AND coalesce(runs.payload_hash, '') = coalesce(source.payload_hash, '')
  AND runs.status IN ('queued', 'running');

-- name: database_ping
-- The readiness probe: the database answers.
SELECT 1;

-- name: run_queue_stats
-- Queue lag and load per run type, read at each metrics scrape: the age of
-- the oldest queued run, and how many runs are queued and running. Only
-- active runs are read (the partial unique index covers exactly them).
SELECT run_type,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'queued')),
                0)::float8 AS oldest_queued_seconds
FROM runs
WHERE status IN ('queued', 'running')
GROUP BY run_type;
-- --- Microsoft Graph (the Graph TenantSource) ------------------------------

-- name: tenant_graph_get
SELECT id, graph_tenant_id FROM tenants WHERE external_id = %(tenant)s;

-- name: tenant_graph_set
-- Creates the tenant, or maps an existing one to its Entra tenant (a NULL
-- mapping keeps the one it has). Says whether the tenant is new.
INSERT INTO tenants (external_id, graph_tenant_id) VALUES (%(tenant)s, %(graph_tenant_id)s)
ON CONFLICT (external_id) DO UPDATE
SET graph_tenant_id = coalesce(EXCLUDED.graph_tenant_id, tenants.graph_tenant_id)
RETURNING id, (xmax = 0) AS created, graph_tenant_id;

-- name: tenant_list
SELECT t.external_id, t.graph_tenant_id, t.created_at,
       (SELECT count(*) FROM runs r
         WHERE r.tenant_external_id = t.external_id AND r.status IN ('queued', 'running')) AS active_runs,
       (SELECT count(*) FROM backup_sets b WHERE b.tenant_id = t.id) AS backup_sets,
       (SELECT count(*) FROM policy_snapshots s WHERE s.tenant_id = t.id) AS snapshots
FROM tenants t
ORDER BY t.external_id;

-- name: tenant_usage
-- What removing the tenant would delete, and whether it has work in hand.
SELECT t.id,
       (SELECT count(*) FROM runs r
         WHERE r.tenant_external_id = t.external_id AND r.status IN ('queued', 'running')) AS active_runs,
       (SELECT count(*) FROM backup_sets b WHERE b.tenant_id = t.id) AS backup_sets,
       (SELECT count(*) FROM policy_snapshots s WHERE s.tenant_id = t.id) AS snapshots
FROM tenants t
WHERE t.external_id = %(tenant)s
FOR UPDATE OF t;

-- name: tenant_delete
-- Its live policies, snapshots, backup sets and Graph index go with it
-- (ON DELETE CASCADE); runs and audit events are history and stay.
DELETE FROM tenants WHERE id = %(tenant_id)s;

-- name: graph_policies_upsert
-- Records in which collection each listed policy lives (one statement per batch).
INSERT INTO graph_policies (tenant_id, policy_id, collection)
SELECT %(tenant_id)s, p.policy_id, p.collection
FROM unnest(%(policy_ids)s::text[], %(collections)s::text[]) AS p(policy_id, collection)
ON CONFLICT (tenant_id, policy_id) DO UPDATE
SET collection = EXCLUDED.collection, seen_at = now();

-- name: graph_policies_get
SELECT policy_id, collection, replaced_by FROM graph_policies
WHERE tenant_id = %(tenant_id)s AND policy_id = ANY(%(policy_ids)s::text[]);

-- name: graph_policies_replace
-- A restore created gone policies anew: each old id now stands for its new
-- object, and the new ids are known (one statement per batch).
WITH replaced AS (
    INSERT INTO graph_policies (tenant_id, policy_id, collection, replaced_by)
    SELECT %(tenant_id)s, r.old_id, r.collection, r.new_id
    FROM unnest(%(old_ids)s::text[], %(new_ids)s::text[], %(collections)s::text[])
         AS r(old_id, new_id, collection)
    ON CONFLICT (tenant_id, policy_id) DO UPDATE
    SET replaced_by = EXCLUDED.replaced_by, seen_at = now()
)
INSERT INTO graph_policies (tenant_id, policy_id, collection)
SELECT %(tenant_id)s, r.new_id, r.collection
FROM unnest(%(new_ids)s::text[], %(collections)s::text[]) AS r(new_id, collection)
ON CONFLICT (tenant_id, policy_id) DO NOTHING;

-- name: graph_pacing_take
-- Takes `requests` and `writes` tokens from the tenant's buckets, refilled
-- for the time since the last take; the buckets may go below zero (the
-- call has a reserved slot). Returns how long the caller must wait before
-- its call goes out: until the buckets would be back at zero, and until any
-- pause has passed. One short statement: the row lock lasts only for it.
-- clock_timestamp(), not now(): a take that waited for the row lock must
-- not refill for time that another take already counted.
INSERT INTO graph_pacing AS p (graph_tenant_id, requests, writes, refilled_at)
VALUES (%(graph_tenant_id)s, %(request_capacity)s - %(requests)s,
        %(write_capacity)s - %(writes)s, clock_timestamp())
ON CONFLICT (graph_tenant_id) DO UPDATE
SET requests = least(%(request_capacity)s, p.requests + %(request_rate)s
                     * greatest(0, extract(epoch FROM clock_timestamp() - p.refilled_at))) - %(requests)s,
    writes = least(%(write_capacity)s, p.writes + %(write_rate)s
                   * greatest(0, extract(epoch FROM clock_timestamp() - p.refilled_at))) - %(writes)s,
    refilled_at = greatest(p.refilled_at, clock_timestamp())
RETURNING greatest(0.0,
                   -p.requests / %(request_rate)s,
                   -p.writes / %(write_rate)s,
                   coalesce(extract(epoch FROM p.paused_until - clock_timestamp())::float8, 0.0)
                  ) AS wait_seconds;

-- name: graph_pacing_pause
-- Graph answered 429 or 503: every call to the tenant waits until the
-- pause has passed (Retry-After, or exponential backoff with jitter when
-- Graph named no time). Buckets start again from empty, since calls made
-- while throttled count against the budget too. The tenant's running runs
-- show the pause (a new version wakes their watchers); a run row that its
-- worker has locked is skipped rather than waited for.
WITH streak AS (
    SELECT CASE WHEN coalesce(paused_until, '-infinity') > now() - make_interval(secs => %(calm_seconds)s)
                THEN throttle_streak + 1 ELSE 1 END AS n
    FROM graph_pacing WHERE graph_tenant_id = %(graph_tenant_id)s
), paused AS (
    UPDATE graph_pacing AS p
    SET throttle_streak = streak.n,
        throttled_total = p.throttled_total + 1,
        requests = least(p.requests, 0),
        writes = least(p.writes, 0),
        paused_until = greatest(p.paused_until, now() + make_interval(secs => coalesce(
            %(retry_after)s::float8,
            least(%(backoff_max)s, %(backoff_base)s * power(2, streak.n - 1)) * (0.5 + random() / 2))))
    FROM streak
    WHERE p.graph_tenant_id = %(graph_tenant_id)s
    RETURNING p.paused_until
), shown AS (
    UPDATE runs AS r
    SET throttled_until = paused.paused_until, version = r.version + 1
    FROM paused
    WHERE r.id IN (
        SELECT r2.id
        FROM runs r2 JOIN tenants t ON t.external_id = r2.tenant_external_id, paused p2
        WHERE lower(t.graph_tenant_id) = lower(%(graph_tenant_id)s) AND r2.status = 'running'
          -- a pause extended by less than a second is not news
          AND (r2.throttled_until IS NULL
               OR r2.throttled_until < p2.paused_until - interval '1 second')
        FOR UPDATE OF r2 SKIP LOCKED)
    RETURNING r.id
)
SELECT paused_until, extract(epoch FROM paused_until - now())::float8 AS wait_seconds,
       (SELECT count(*) FROM shown) AS runs_shown
FROM paused;

-- What ties a run to the request that created it: the caller's request id
-- (X-Request-Id, or one the gateway or server made), which the worker's log
-- lines carry, and the W3C trace context of the StartRun call, from which
-- the worker's spans continue the caller's trace. Both are NULL for runs
-- created before this migration or without them.
ALTER TABLE runs
    ADD COLUMN request_id text
        CONSTRAINT runs_request_id_short CHECK (length(request_id) <= 128),
    ADD COLUMN trace_context jsonb;

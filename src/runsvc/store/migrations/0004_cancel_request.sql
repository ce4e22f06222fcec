-- CancelRun of a running run: the server records the request here, and the
-- worker that holds the lease stops at its next batch boundary, failing the
-- items it never attempted with CANCELLED. A queued run is cancelled at once
-- by the server and never gets this far.
ALTER TABLE runs ADD COLUMN cancel_requested_at timestamptz;

"""Observability of runsvc's own processes (server, worker): its metrics, its
log wiring and its spans, over the shared runsvc_observe distribution."""

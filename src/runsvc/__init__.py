"""runsvc: starts, runs and reports long-running, tenant-scoped operations."""

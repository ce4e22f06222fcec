"""A Postgres for the tests: each test session gets a fresh database (see
runsvc.store.scratch, which the benchmarks use too)."""

from runsvc.store.scratch import admin_url, fresh_database, with_dbname

__all__ = ["admin_url", "fresh_database", "with_dbname"]

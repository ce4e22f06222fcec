"""Postgres: named SQL queries, migrations, and the operations on them."""

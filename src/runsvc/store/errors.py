"""The store's own error, for what the driver's errors mean to a caller."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached or is shutting down; retrying may help."""

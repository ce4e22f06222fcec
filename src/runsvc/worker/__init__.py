"""The worker: Dramatiq actors and the bookkeeping around every handler."""

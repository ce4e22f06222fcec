"""Test support: real processes, databases and clients."""

"""Python client for runsvc; the generated code lives in `tenantpilot.runs.v1`."""

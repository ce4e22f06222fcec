"""runsvc-observe: logging, metrics, tracing and request ids shared by every runsvc process."""

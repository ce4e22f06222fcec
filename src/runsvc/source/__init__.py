"""TenantSource: the port to a tenant's live configuration (Microsoft Graph in
production). The built-in adapter keeps it in the live_policies table; another
adapter is plugged in with RUNSVC_TENANT_SOURCE=module:factory.
"""

from runsvc.source.port import (
    WRITTEN,
    Deadline,
    ItemFailure,
    LivePolicy,
    PolicyIdPage,
    SourceError,
    SourceRejected,
    SourceThrottled,
    SourceTimeout,
    SourceUnavailable,
    TenantSource,
    TenantSourceFactory,
)

__all__ = [
    "WRITTEN",
    "Deadline",
    "ItemFailure",
    "LivePolicy",
    "PolicyIdPage",
    "SourceError",
    "SourceRejected",
    "SourceThrottled",
    "SourceTimeout",
    "SourceUnavailable",
    "TenantSource",
    "TenantSourceFactory",
]

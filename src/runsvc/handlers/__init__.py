"""One handler per run type, and the registry that maps a type to it."""

from __future__ import annotations

from runsvc.handlers.backup_set_add_policies import BackupSetAddPolicies
from runsvc.handlers.base import RunHandler
from runsvc.handlers.restore import RestoreExecute, RestorePreview
from runsvc.handlers.snapshot_capture import SnapshotCapture
from runsvc.model import RunType

HANDLERS: dict[RunType, RunHandler] = {
    handler.run_type: handler
    for handler in (SnapshotCapture(), BackupSetAddPolicies(), RestorePreview(), RestoreExecute())
}

assert set(HANDLERS) == set(RunType), "every run type needs a handler"

"""`runsvc runs ...`: the operator commands, over gRPC through the Python
client (never the database). Tables and the live progress bar are drawn by
rich; `--json` prints the HTTP contract's JSON instead."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from tenantpilot.runs.v1 import runs_pb2

from runsvc_client import TLS, RunsClient, RunsError, is_terminal
from runsvc_client.records import STATUS, run_item, run_record, start_response

RUN_TYPES = ("backup_set_add_policies", "restore_execute", "restore_preview", "snapshot_capture")
STATUSES = tuple(STATUS.values())
OUTCOMES = ("pending", "succeeded", "failed")
# Exit codes of the commands that end with a run's final status (2 stays
# argparse's usage error); a call that fails exits with CALL_FAILED.
EXIT_CODES = {"succeeded": 0, "failed": 1, "partial": 3}
CALL_FAILED = 4
STATUS_STYLE = {
    "queued": "cyan",
    "running": "yellow",
    "succeeded": "green",
    "failed": "red",
    "partial": "magenta",
}


def register(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser(
        "runs",
        help="list, watch, start, cancel and retry runs over gRPC",
        description="Operator commands over the gRPC API. Settings come from flags or the "
        "environment (`source .runsvc/dev.env` is enough): RUNSVC_GRPC_TARGET, RUNSVC_TOKEN, "
        "RUNSVC_TENANT, RUNSVC_GRPC_CA / _CERT / _KEY / _SERVER_NAME for TLS.",
    )
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    common = _common_options()
    run_address = argparse.ArgumentParser(add_help=False)
    run_address.add_argument("run_type", metavar="TYPE", choices=RUN_TYPES)
    run_address.add_argument("run_id", metavar="RUN_ID")

    listing = actions.add_parser("list", parents=[common], help="a tenant's runs, newest first")
    listing.add_argument("--type", action="append", dest="types", choices=RUN_TYPES, default=[])
    listing.add_argument("--status", action="append", dest="statuses", choices=STATUSES, default=[])
    listing.add_argument("--target", help="only runs with this targetObjectId")
    listing.add_argument("--limit", type=_positive, default=50, help="at most N runs (50)")
    listing.set_defaults(handler=run, action=_list)

    get = actions.add_parser("get", parents=[common, run_address], help="one run's state")
    get.set_defaults(handler=run, action=_get)

    watch = actions.add_parser(
        "watch", parents=[common, run_address], help="follow a run to its end (exit 0/1/3)"
    )
    watch.set_defaults(handler=run, action=_watch)

    items = actions.add_parser("items", parents=[common, run_address], help="a run's items")
    items.add_argument("--outcome", action="append", dest="outcomes", choices=OUTCOMES, default=[])
    items.add_argument("--limit", type=_positive, default=1000, help="at most N items (1000)")
    items.set_defaults(handler=run, action=_items)

    start = actions.add_parser("start", parents=[common], help="start a run (or reuse it)")
    start.add_argument("run_type", metavar="TYPE", choices=RUN_TYPES)
    start.add_argument("--target", help="targetObjectId (a backup set id)")
    start.add_argument("--payload-hash")
    start.add_argument("--item", action="append", dest="item_ids", metavar="ID")
    start.add_argument("--watch", action="store_true", help="then follow it to its end")
    start.set_defaults(handler=run, action=_start)

    cancel = actions.add_parser("cancel", parents=[common, run_address], help="cancel a run")
    cancel.set_defaults(handler=run, action=_cancel)

    retry = actions.add_parser(
        "retry", parents=[common, run_address], help="re-run the failed items of a run"
    )
    retry.add_argument("--watch", action="store_true", help="then follow it to its end")
    retry.set_defaults(handler=run, action=_retry)


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def _common_options() -> argparse.ArgumentParser:
    env = os.environ.get
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--tenant", default=env("RUNSVC_TENANT"), help="the tenant (env RUNSVC_TENANT)"
    )
    common.add_argument("--json", action="store_true", help="print JSON (the HTTP contract's)")
    common.add_argument(
        "--grpc-target",
        default=env("RUNSVC_GRPC_TARGET", "127.0.0.1:50051"),
        help="HOST:PORT of the gRPC server (env RUNSVC_GRPC_TARGET)",
    )
    common.add_argument("--token", default=env("RUNSVC_TOKEN"), help="bearer token (RUNSVC_TOKEN)")
    common.add_argument("--grpc-ca", default=env("RUNSVC_GRPC_CA"), help="CA bundle: TLS")
    common.add_argument("--grpc-cert", default=env("RUNSVC_GRPC_CERT"), help="client cert: mTLS")
    common.add_argument("--grpc-key", default=env("RUNSVC_GRPC_KEY"), help="client key: mTLS")
    common.add_argument("--grpc-server-name", default=env("RUNSVC_GRPC_SERVER_NAME"))
    common.add_argument("--timeout", type=float, default=10.0, help="seconds per call (10)")
    return common


class _Usage(Exception):
    """The settings cannot work (exit 2, like argparse)."""


def run(args: argparse.Namespace) -> int:
    """Runs one `runsvc runs` action with a client built from the settings."""
    try:
        if not args.tenant:
            raise _Usage("no tenant: pass --tenant or set RUNSVC_TENANT")
        tls = TLS.from_files(args.grpc_ca, args.grpc_cert, args.grpc_key, args.grpc_server_name)
        client = RunsClient(
            args.grpc_target, token=args.token, tls=tls, default_timeout=args.timeout
        )
    except (_Usage, ValueError) as problem:
        print(f"runsvc runs: {problem}", file=sys.stderr)
        return 2
    out = Console(highlight=False, soft_wrap=args.json)
    if not out.is_terminal:
        out.width = 200  # piped: whole lines for grep, not a table cut at 80 columns
    try:
        with client:
            return args.action(client, args, out)
    except RunsError as error:
        print(f"runsvc runs: {error}", file=sys.stderr)
        return CALL_FAILED
    except KeyboardInterrupt:
        print("runsvc runs: stopped (the run goes on)", file=sys.stderr)
        return 130


def _emit(out: Console, value: Any) -> None:
    out.print(json.dumps(value, separators=(",", ":")), markup=False, soft_wrap=True)


def _when(stamp: Any, has: bool) -> str:
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S") if has else "-"


def _short(stamp: Any, has: bool) -> str:
    """Month, day and time (UTC): what a table row has room for."""
    return stamp.ToDatetime().strftime("%m-%d %H:%M:%S") if has else "-"


def _status(run: runs_pb2.RunRecord) -> Text:
    name = STATUS[run.status]
    return Text(name, style=STATUS_STYLE[name])


# -- the actions --


def _list(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    runs = client.iter_runs(
        tenant=args.tenant,
        run_types=args.types,
        statuses=args.statuses,
        target_object_id=args.target,
        page_size=min(args.limit, 1000),
    )
    found = list(itertools.islice(runs, args.limit))
    if args.json:
        _emit(out, {"runs": [run_record(r) for r in found]})
        return 0
    table = Table(title=f"runs of {args.tenant} (times UTC)", title_justify="left")
    for column in ("ID", "TYPE", "STATUS", "ITEMS", "CREATED", "FINISHED", "ERROR"):
        table.add_column(column, no_wrap=column in ("ID", "STATUS"))
    for record in found:
        counts = record.counts
        table.add_row(
            record.id,
            record.type,
            _status(record),
            f"{counts.succeeded + counts.failed}/{counts.total}",
            _short(record.created_at, True),
            _short(record.finished_at, record.HasField("finished_at")),
            record.safe_error.code if record.HasField("safe_error") else "",
        )
    out.print(table)
    if not found:
        out.print("no runs")
    return 0


def _get(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    record = client.get_run(tenant=args.tenant, run_type=args.run_type, run_id=args.run_id)
    if args.json:
        _emit(out, run_record(record))
    else:
        _describe(out, record)
    return 0


def _describe(out: Console, record: runs_pb2.RunRecord) -> None:
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    counts = record.counts
    rows: list[tuple[str, Any]] = [
        ("run", record.id),
        ("type", record.type),
        ("tenant", record.tenant_external_id),
        ("status", _status(record)),
        ("items", f"{counts.succeeded} succeeded, {counts.failed} failed of {counts.total}"),
        ("created", _when(record.created_at, True)),
        ("started", _when(record.started_at, record.HasField("started_at"))),
        ("finished", _when(record.finished_at, record.HasField("finished_at"))),
    ]
    if record.HasField("retry_of_run_id"):
        rows.append(("retries", record.retry_of_run_id))
    if record.HasField("cancel_requested_at"):
        rows.append(("cancel asked", _when(record.cancel_requested_at, True)))
    if record.HasField("safe_error"):
        rows.append(("error", record.safe_error.code))
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)


class ItemsPerSecond(ProgressColumn):
    """Items per second over the watch so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        done = task.completed - task.fields.get("done_at_start", 0)
        rate = done / elapsed if elapsed > 0.5 else 0.0
        return Text(f"{rate:,.1f} items/s", style="progress.data.speed")


def _follow(client: RunsClient, args: argparse.Namespace, out: Console, run_id: str) -> int:
    """Watches a run to its end: a live bar (or one JSON line per state);
    the exit code says how it ended."""
    states = client.watch_run(
        tenant=args.tenant, run_type=args.run_type, run_id=run_id, timeout=None
    )
    final: runs_pb2.RunRecord | None = None
    if args.json:
        for state in states:
            _emit(out, run_record(state))
            final = state
    else:
        final = _progress(out, states)
    if final is None or not is_terminal(final):
        print("runsvc runs: the watch ended before the run did", file=sys.stderr)
        return CALL_FAILED
    return EXIT_CODES[STATUS[final.status]]


def _progress(out: Console, states: Iterable[runs_pb2.RunRecord]) -> runs_pb2.RunRecord | None:
    began = time.monotonic()
    final: runs_pb2.RunRecord | None = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        ItemsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=out,
        transient=False,
    ) as bar:
        task = None
        for state in states:
            final = state
            counts = state.counts
            done = counts.succeeded + counts.failed
            description = f"{state.type} {STATUS[state.status]:<9}"
            if task is None:
                task = bar.add_task(
                    description, total=counts.total or None, completed=done, done_at_start=done
                )
            bar.update(task, description=description, total=counts.total or None, completed=done)
    if final is not None:
        counts = final.counts
        error = f" ({final.safe_error.code})" if final.HasField("safe_error") else ""
        line = Text.assemble(
            _status(final),
            f"{error}: {counts.succeeded} succeeded, {counts.failed} failed of {counts.total}"
            f" in {time.monotonic() - began:.1f}s",
        )
        out.print(line)
    return final


def _watch(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    return _follow(client, args, out, args.run_id)


def _items(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    items = client.iter_run_items(
        tenant=args.tenant,
        run_type=args.run_type,
        run_id=args.run_id,
        outcomes=args.outcomes,
        page_size=min(args.limit, 1000),
    )
    found = list(itertools.islice(items, args.limit))
    if args.json:
        _emit(out, {"items": [run_item(i) for i in found]})
        return 0
    table = Table(title=f"items of {args.run_id}", title_justify="left")
    for column in ("#", "ITEM", "OUTCOME", "ERROR", "FINISHED", "DETAIL"):
        table.add_column(column)
    for item in found:
        record = run_item(item)
        outcome = record["outcome"]
        style = {"succeeded": "green", "failed": "red"}.get(outcome, "cyan")
        table.add_row(
            str(item.position),
            item.item_id,
            Text(outcome, style=style),
            record["errorCode"] or "",
            _short(item.finished_at, item.HasField("finished_at")),
            json.dumps(record["detail"], separators=(",", ":")) if record["detail"] else "",
        )
    out.print(table)
    if not found:
        out.print("no items (a queued run has none yet)")
    return 0


def _start(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    response = client.start_run(
        tenant=args.tenant,
        run_type=args.run_type,
        target_object_id=args.target,
        payload_hash=args.payload_hash,
        item_ids=args.item_ids,
    )
    return _started(client, args, out, response)


def _started(
    client: RunsClient,
    args: argparse.Namespace,
    out: Console,
    response: runs_pb2.StartRunResponse | runs_pb2.RetryRunResponse,
) -> int:
    if args.json:
        _emit(out, start_response(response))
    else:
        how = "reused the active run" if response.reused else "started"
        out.print(f"{how} {response.run.id} ({response.run.type})")
    if not args.watch:
        return 0
    args.run_type = response.run.type
    return _follow(client, args, out, response.run.id)


def _cancel(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    record = client.cancel_run(tenant=args.tenant, run_type=args.run_type, run_id=args.run_id)
    if args.json:
        _emit(out, run_record(record))
    elif is_terminal(record):
        out.print(Text.assemble("cancelled: ", _status(record), f" ({record.safe_error.code})"))
    else:
        out.print("cancel asked: the run stops at its next batch")
    return 0


def _retry(client: RunsClient, args: argparse.Namespace, out: Console) -> int:
    response = client.retry_run(tenant=args.tenant, run_type=args.run_type, run_id=args.run_id)
    return _started(client, args, out, response)

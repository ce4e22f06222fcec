import os

from tenantpilot.runs.v1 import runs_pb2

from runsvc_client import InvalidArgument, RunsClient

target = os.environ.get("RUNSVC_GRPC_TARGET", "127.0.0.1:50051")
tenant = os.environ.get("RUNSVC_TENANT", "demo-tenant")
token = os.environ.get("RUNSVC_TOKEN")  # sent as "authorization: Bearer <token>"

with RunsClient(target, token=token, default_timeout=10) as client:
    started = client.start_run(tenant=tenant, run_type="snapshot_capture")
    run = started.run
    print(f"run {run.id} (reused: {started.reused})")
    for state in client.watch_run(tenant=tenant, run_type=run.type, run_id=run.id):
        done = state.counts.succeeded + state.counts.failed
        print(f"{runs_pb2.RunStatus.Name(state.status)} {done}/{state.counts.total}")

    try:
        client.start_run(tenant=tenant, run_type="no_such_type")
    except InvalidArgument as error:
        print(f"rejected: {error.field}: {error.violations[0].description}")

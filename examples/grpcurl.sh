AUTH="authorization: Bearer ${RUNSVC_TOKEN:-}"
RUN_ID=$(grpcurl -plaintext -H "$AUTH" \
  -d "{\"tenant_external_id\": \"$RUNSVC_TENANT\", \"run_type\": \"snapshot_capture\"}" \
  "$RUNSVC_GRPC_TARGET" tenantpilot.runs.v1.RunService/StartRun \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["run"]["id"])')

# streams the current state, then every change; ends after the terminal state
grpcurl -plaintext -H "$AUTH" \
  -d "{\"tenant_external_id\": \"$RUNSVC_TENANT\", \"run_type\": \"snapshot_capture\", \"run_id\": \"$RUN_ID\"}" \
  "$RUNSVC_GRPC_TARGET" tenantpilot.runs.v1.RunService/WatchRun

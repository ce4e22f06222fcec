import { RunsClient, RunStatus } from "@tenantpilot/runsvc-client";

const client = new RunsClient(process.env.RUNSVC_GRPC_TARGET ?? "127.0.0.1:50051", {
  token: process.env.RUNSVC_TOKEN, // sent as "authorization: Bearer <token>"
});
const tenant = process.env.RUNSVC_TENANT ?? "demo-tenant";

const { reused, run } = await client.startRun({ tenant, runType: "snapshot_capture" });
console.log(`run ${run!.id} (reused: ${reused})`);
for await (const state of client.watchRun({ tenant, runType: run!.type, runId: run!.id })) {
  const counts = state.counts!;
  console.log(`${RunStatus[state.status]} ${counts.succeeded + counts.failed}/${counts.total}`);
}

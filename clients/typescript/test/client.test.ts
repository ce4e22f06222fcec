// The TypeScript client against a live runsvc: RUNSVC_GRPC_TARGET (host:port),
// RUNSVC_TENANT (a seeded tenant), optionally RUNSVC_TOKEN (and its name,
// RUNSVC_TOKEN_NAME), and
// RUNSVC_IDLE_GRPC_TARGET (a server whose runs stay queued, for reuse).
// Without a target the live tests are skipped; `make test` sets them all.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import { Code } from "@connectrpc/connect";
import {
  CallerRole,
  ItemOutcome,
  RunsClient,
  RunsError,
  RunStatus,
  isTerminal,
  type RunRecord,
} from "../src/index.js";

const target = process.env.RUNSVC_GRPC_TARGET;
const tenant = process.env.RUNSVC_TENANT ?? "";
const token = process.env.RUNSVC_TOKEN || undefined;
const idleTarget = process.env.RUNSVC_IDLE_GRPC_TARGET;
const live = { skip: target ? false : "RUNSVC_GRPC_TARGET is not set" };
const idle = { skip: idleTarget ? false : "RUNSVC_IDLE_GRPC_TARGET is not set" };

async function rejection(promise: Promise<unknown>): Promise<RunsError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RunsError, `not a RunsError: ${error}`);
    return error;
  }
  assert.fail("the call succeeded");
}

test("starts a run and watches it to its terminal state", live, async () => {
  const client = new RunsClient(target!, { token });
  const started = await client.startRun({
    tenant,
    runType: "snapshot_capture",
    targetObjectId: `ts-${Date.now()}`,
    itemIds: ["pol-00000", "pol-00001"],
  });
  assert.equal(started.reused, false);
  const run = started.run!;
  assert.equal(run.counts?.total, 2);

  const states: RunRecord[] = [];
  for await (const state of client.watchRun({ tenant, runType: run.type, runId: run.id })) {
    states.push(state);
  }
  const final = states.at(-1)!;
  assert.ok(isTerminal(final));
  assert.equal(final.status, RunStatus.SUCCEEDED);
  assert.equal(final.counts?.succeeded, 2);
  assert.ok(states.slice(0, -1).every((s) => !isTerminal(s)));
  const versions = states.map((s) => s.version);
  assert.deepEqual(versions, [...versions].sort((a, b) => (a < b ? -1 : 1)));

  const got = await client.getRun({ tenant, runType: run.type, runId: run.id });
  assert.equal(got.version, final.version);
  assert.equal(got.status, RunStatus.SUCCEEDED);
  assert.ok(got.finishedAt);

});

test("an identical StartRun while the run is active reuses it", idle, async () => {
  // A server no worker serves: its runs stay queued, so the second call
  // meets an active run whatever the machine's speed.
  const client = new RunsClient(idleTarget!, { token });
  const options = { tenant, runType: "snapshot_capture", targetObjectId: `ts-${Date.now()}` };
  const first = await client.startRun(options);
  const second = await client.startRun(options);
  assert.equal(first.reused, false);
  assert.equal(second.reused, true);
  assert.equal(second.run?.id, first.run?.id);
  assert.equal(second.run?.status, RunStatus.QUEUED);
});

test("lists runs page by page, cancels one and retries it", idle, async () => {
  const client = new RunsClient(idleTarget!, { token });
  const label = `ts-ops-${Date.now()}`;
  const started: string[] = [];
  for (const n of [0, 1, 2]) {
    const { run } = await client.startRun({
      tenant,
      runType: "snapshot_capture",
      targetObjectId: `${label}-${n}`,
      itemIds: ["a", "b"],
    });
    started.push(run!.id);
  }
  const listed: string[] = [];
  for await (const run of client.runs({ tenant, pageSize: 2, statuses: [RunStatus.QUEUED] })) {
    listed.push(run.id);
  }
  for (const id of started) assert.ok(listed.includes(id), `${id} not listed`);
  const mine = listed.filter((id) => started.includes(id));
  assert.deepEqual(mine, [...started].reverse()); // newest first

  const cancelled = await client.cancelRun({ tenant, runType: "snapshot_capture", runId: started[0] });
  assert.equal(cancelled.status, RunStatus.FAILED);
  assert.equal(cancelled.safeError?.code, "CANCELLED");
  const items: string[] = [];
  for await (const item of client.runItems({
    tenant,
    runType: "snapshot_capture",
    runId: started[0],
    outcomes: [ItemOutcome.FAILED],
    pageSize: 1,
  })) {
    assert.equal(item.errorCode, "CANCELLED");
    items.push(item.itemId);
  }
  assert.deepEqual(items, ["a", "b"]);

  const retried = await client.retryRun({ tenant, runType: "snapshot_capture", runId: started[0] });
  assert.equal(retried.reused, false);
  assert.equal(retried.run?.retryOfRunId, started[0]);
  assert.equal(retried.run?.counts?.total, 2);

  const bad = await rejection(client.listRuns({ tenant, pageToken: "not-a-token" }));
  assert.equal(bad.status, "invalid_argument");
  assert.equal(bad.field, "page_token");
});

test("getCaller names the token, its role and its grants, never its secret", live, async () => {
  const client = new RunsClient(target!, { token });
  const caller = await client.getCaller();
  assert.equal(caller.tokenName, process.env.RUNSVC_TOKEN_NAME);
  assert.equal(caller.role, CallerRole.OPERATOR);
  assert.equal(caller.allTenants, true);
  assert.deepEqual(caller.tenants, []);
  assert.ok(!JSON.stringify(caller).includes(token ?? "no token"), "the secret came back");
});

test("invalid input rejects with INVALID_ARGUMENT naming the field", live, async () => {
  const client = new RunsClient(target!, { token });
  const bad = await rejection(client.startRun({ tenant, runType: "drop_everything" }));
  assert.equal(bad.code, Code.InvalidArgument);
  assert.equal(bad.status, "invalid_argument");
  assert.equal(bad.field, "run_type");
  assert.ok(bad.violations[0].description);

  const item = await rejection(
    client.startRun({ tenant, runType: "snapshot_capture", itemIds: ["ok", "a\tb"] }),
  );
  assert.equal(item.field, "options.item_ids[1]");
});

test("a run of another run type is NOT_FOUND", live, async () => {
  const client = new RunsClient(target!, { token });
  const { run } = await client.startRun({ tenant, runType: "snapshot_capture", itemIds: [] });
  const missing = await rejection(
    client.getRun({ tenant, runType: "restore_preview", runId: run!.id }),
  );
  assert.equal(missing.code, Code.NotFound);
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a dead server fails within the deadline with UNAVAILABLE", async () => {
  const client = new RunsClient(`127.0.0.1:${await freePort()}`, { defaultTimeoutMs: 2000 });
  const began = Date.now();
  const error = await rejection(
    client.getRun({ tenant: "t", runType: "snapshot_capture", runId: "r" }),
  );
  assert.ok([Code.Unavailable, Code.DeadlineExceeded].includes(error.code), error.toString());
  assert.ok(Date.now() - began < 3500, `took ${Date.now() - began} ms`);
});

test("a silent server fails with DEADLINE_EXCEEDED, never hangs", async () => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket)); // accepts, never answers
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  try {
    const port = (silent.address() as { port: number }).port;
    const client = new RunsClient(`127.0.0.1:${port}`, { defaultTimeoutMs: 1000 });
    const began = Date.now();
    const error = await rejection(
      client.startRun({ tenant: "t", runType: "snapshot_capture" }),
    );
    assert.equal(error.code, Code.DeadlineExceeded);
    assert.ok(Date.now() - began < 2500);
    const watch = client.watchRun({ tenant: "t", runType: "x", runId: "r", timeoutMs: 1000 });
    const streamError = await rejection(watch.next());
    assert.equal(streamError.code, Code.DeadlineExceeded);

    // A watch the caller stops is CANCELED, not an outage.
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 200);
    const stopped = client.watchRun({ tenant: "t", runType: "x", runId: "r", signal: stop.signal });
    const stopError = await rejection(stopped.next());
    assert.equal(stopError.code, Code.Canceled);
  } finally {
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

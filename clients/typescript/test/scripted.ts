// Driven by tests/clients/test_typescript.py against its scripted server:
// GetRun once with the options from the environment, printing the result
// (or the error) as JSON.
import { readFileSync } from "node:fs";
import { RunsClient, RunsError } from "../src/index.js";

const ca = process.env.SCRIPTED_CA;
const client = new RunsClient(process.env.SCRIPTED_TARGET!, {
  token: process.env.SCRIPTED_TOKEN || undefined,
  tls: ca
    ? {
        ca: readFileSync(ca),
        cert: process.env.SCRIPTED_CERT ? readFileSync(process.env.SCRIPTED_CERT) : undefined,
        key: process.env.SCRIPTED_KEY ? readFileSync(process.env.SCRIPTED_KEY) : undefined,
      }
    : undefined,
  defaultTimeoutMs: 3000,
  maxAttempts: Number(process.env.SCRIPTED_ATTEMPTS ?? 5),
});
try {
  if (process.env.SCRIPTED_CALL === "watch") {
    const versions: string[] = [];
    try {
      for await (const state of client.watchRun({ tenant: "t", runType: "x", runId: "r7" })) {
        versions.push(state.version.toString());
      }
    } finally {
      console.log(JSON.stringify({ versions }));
    }
  } else {
    const run = await client.getRun({ tenant: "t", runType: "snapshot_capture", runId: "r7" });
    console.log(JSON.stringify({ id: run.id }));
  }
} catch (error) {
  if (!(error instanceof RunsError)) throw error;
  console.log(JSON.stringify({ status: error.status, message: error.message }));
}

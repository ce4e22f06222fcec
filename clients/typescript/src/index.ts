// runsvc client for TypeScript: a typed wrapper over the generated
// protobuf-es code (src/gen, `make gen`) and a Connect transport speaking the
// gRPC protocol over HTTP/2.
import { create } from "@bufbuild/protobuf";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  CancelRunRequestSchema,
  GetCallerRequestSchema,
  GetRunRequestSchema,
  ItemIdListSchema,
  ItemOutcome,
  ListRunItemsRequestSchema,
  ListRunsRequestSchema,
  RetryRunRequestSchema,
  RunService,
  RunStartRequestSchema,
  RunStatus,
  StartRunRequestSchema,
  WatchRunRequestSchema,
  type GetCallerResponse,
  type ListRunItemsResponse,
  type ListRunsResponse,
  type RetryRunResponse,
  type RunItem,
  type RunRecord,
  type StartRunResponse,
} from "./gen/tenantpilot/runs/v1/runs_pb.js";
import { RunsError, toRunsError } from "./errors.js";

export * from "./gen/tenantpilot/runs/v1/runs_pb.js";
export { RunsError, toRunsError, type FieldViolation, type StatusName } from "./errors.js";

export interface RunsClientOptions {
  /** Sent as `authorization: Bearer <token>` on every call. */
  token?: string;
  /** TLS: a CA bundle (PEM) to trust; for mutual TLS also a client cert and key. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** Deadline of StartRun and GetRun (ms), unless a call says otherwise. Default 10 s. */
  defaultTimeoutMs?: number;
  /** Deadline of a whole WatchRun stream (ms). Default one hour. */
  watchTimeoutMs?: number;
  /** Attempts of StartRun and GetRun on UNAVAILABLE, with exponential backoff. Default 5. */
  maxAttempts?: number;
}

export interface StartRunArgs {
  tenant: string;
  runType: string;
  targetObjectId?: string;
  payloadHash?: string;
  /** Unset: the run type's default set; [] means no items. */
  itemIds?: string[];
  timeoutMs?: number;
}

export interface RunAddress {
  tenant: string;
  runType: string;
  runId: string;
  timeoutMs?: number;
}

export interface WatchRunArgs extends RunAddress {
  /** Send only states newer than this version. */
  afterVersion?: bigint;
  /** Stops the stream early. */
  signal?: AbortSignal;
}

export interface ListRunsArgs {
  tenant: string;
  /** Only runs of these types. */
  runTypes?: string[];
  /** Only runs in these statuses. */
  statuses?: RunStatus[];
  targetObjectId?: string;
  /** Only runs created at or after this time. */
  createdAfter?: Date;
  /** Only runs created before this time. */
  createdBefore?: Date;
  /** Runs per page; unset: the server's default (50), at most 1,000. */
  pageSize?: number;
  /** The nextPageToken of the previous page. */
  pageToken?: string;
  timeoutMs?: number;
}

export interface ListRunItemsArgs extends RunAddress {
  /** Only items with these outcomes. */
  outcomes?: ItemOutcome[];
  /** Items per page; unset: the server's default (100), at most 1,000. */
  pageSize?: number;
  pageToken?: string;
}

const TERMINAL = new Set([RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED]);

/** True for succeeded, partial and failed. */
export function isTerminal(run: RunRecord): boolean {
  return TERMINAL.has(run.status);
}

function baseUrl(target: string, secure: boolean): string {
  if (/^https?:\/\//.test(target)) return target;
  return `${secure ? "https" : "http"}://${target}`;
}

/** Reopened watch streams in a row that deliver nothing before giving up. */
const MAX_IDLE_RESUMES = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The entries of every page, asking for the next while a token comes back. */
async function* follow<Page extends { nextPageToken: string }, T>(
  fetch: (pageToken: string) => Promise<Page>,
  entries: (page: Page) => T[],
): AsyncGenerator<T> {
  let token = "";
  do {
    const page = await fetch(token);
    yield* entries(page);
    token = page.nextPageToken;
  } while (token);
}

/** Calls tenantpilot.runs.v1.RunService at `target` ("host:port" or a URL). */
export class RunsClient {
  private readonly client: Client<typeof RunService>;
  private readonly defaultTimeoutMs: number;
  private readonly watchTimeoutMs: number;
  private readonly maxAttempts: number;

  constructor(target: string, options: RunsClientOptions = {}) {
    const interceptors: Interceptor[] = [];
    const token = options.token;
    if (token) {
      interceptors.push((next) => (request) => {
        request.header.set("authorization", `Bearer ${token}`);
        return next(request);
      });
    }
    const transport = createGrpcTransport({
      baseUrl: baseUrl(target, options.tls !== undefined),
      interceptors,
      nodeOptions: options.tls ? { ...options.tls } : undefined,
    });
    this.client = createClient(RunService, transport);
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 10_000;
    this.watchTimeoutMs = options.watchTimeoutMs ?? 3_600_000;
    this.maxAttempts = options.maxAttempts ?? 5;
  }

  /** Starts a run, or returns the active run with the same dedupe key (`reused`). */
  async startRun(args: StartRunArgs): Promise<StartRunResponse> {
    const request = create(StartRunRequestSchema, {
      tenantExternalId: args.tenant,
      runType: args.runType,
      options: create(RunStartRequestSchema, {
        targetObjectId: args.targetObjectId,
        payloadHash: args.payloadHash,
        itemIds:
          args.itemIds === undefined ? undefined : create(ItemIdListSchema, { values: args.itemIds }),
      }),
    });
    // Idempotent by its dedupe key, so UNAVAILABLE is retried.
    return this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.startRun(request, { timeoutMs }),
    );
  }

  /** The run's full current state. */
  async getRun(args: RunAddress): Promise<RunRecord> {
    const request = create(GetRunRequestSchema, {
      tenantExternalId: args.tenant,
      runType: args.runType,
      runId: args.runId,
    });
    const response = await this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.getRun(request, { timeoutMs }),
    );
    if (!response.run) throw new RunsError(Code.Internal, "GetRun answered without a run");
    return response.run;
  }

  /** The current state, then one record per change; ends after the terminal
   * state. A stream broken by UNAVAILABLE after it delivered states is
   * reopened from the last version seen (no repeats, same deadline, a few
   * tries with backoff); one that fails before any state is not. */
  async *watchRun(args: WatchRunArgs): AsyncGenerator<RunRecord> {
    const deadline = Date.now() + (args.timeoutMs ?? this.watchTimeoutMs);
    let last = args.afterVersion;
    let delivered = false;
    let idle = 0; // reopened streams in a row that delivered nothing
    for (;;) {
      const request = create(WatchRunRequestSchema, {
        tenantExternalId: args.tenant,
        runType: args.runType,
        runId: args.runId,
        afterVersion: last,
      });
      let progressed = false;
      try {
        const stream = this.client.watchRun(request, {
          timeoutMs: Math.max(deadline - Date.now(), 1),
          signal: args.signal,
        });
        for await (const response of stream) {
          if (!response.run) continue;
          progressed = delivered = true;
          last = response.run.version;
          yield response.run;
        }
        return;
      } catch (thrown) {
        const error = toRunsError(thrown, args.signal?.aborted ?? false);
        idle = progressed ? 0 : idle + 1;
        const pause = idle === 0 ? 0 : 200 * 2 ** (idle - 1);
        const resumable =
          error.code === Code.Unavailable && delivered && idle <= MAX_IDLE_RESUMES;
        if (!resumable || Date.now() + pause >= deadline) throw error;
        await sleep(pause);
      }
    }
  }

  /** One page of the tenant's runs, newest first. */
  async listRuns(args: ListRunsArgs): Promise<ListRunsResponse> {
    const request = create(ListRunsRequestSchema, {
      tenantExternalId: args.tenant,
      runTypes: args.runTypes ?? [],
      statuses: args.statuses ?? [],
      targetObjectId: args.targetObjectId,
      createdAfter: args.createdAfter ? timestampFromDate(args.createdAfter) : undefined,
      createdBefore: args.createdBefore ? timestampFromDate(args.createdBefore) : undefined,
      pageSize: args.pageSize ?? 0,
      pageToken: args.pageToken ?? "",
    });
    return this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.listRuns(request, { timeoutMs }),
    );
  }

  /** Every run listRuns selects, following the page tokens. */
  async *runs(args: Omit<ListRunsArgs, "pageToken">): AsyncGenerator<RunRecord> {
    yield* follow((pageToken) => this.listRuns({ ...args, pageToken }), (page) => page.runs);
  }

  /** One page of a run's items, in order. */
  async listRunItems(args: ListRunItemsArgs): Promise<ListRunItemsResponse> {
    const request = create(ListRunItemsRequestSchema, {
      tenantExternalId: args.tenant,
      runType: args.runType,
      runId: args.runId,
      outcomes: args.outcomes ?? [],
      pageSize: args.pageSize ?? 0,
      pageToken: args.pageToken ?? "",
    });
    return this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.listRunItems(request, { timeoutMs }),
    );
  }

  /** Every item listRunItems selects, following the page tokens. */
  async *runItems(args: Omit<ListRunItemsArgs, "pageToken">): AsyncGenerator<RunItem> {
    yield* follow((pageToken) => this.listRunItems({ ...args, pageToken }), (page) => page.items);
  }

  /** Cancels a queued run at once, a running one at its next batch boundary;
   * the run after the call. FAILED_PRECONDITION for a run that already ended
   * otherwise; cancelling again is fine (so UNAVAILABLE is retried). */
  async cancelRun(args: RunAddress): Promise<RunRecord> {
    const request = create(CancelRunRequestSchema, {
      tenantExternalId: args.tenant,
      runType: args.runType,
      runId: args.runId,
    });
    const response = await this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.cancelRun(request, { timeoutMs }),
    );
    if (!response.run) throw new RunsError(Code.Internal, "CancelRun answered without a run");
    return response.run;
  }

  /** A new run over the failed items of a failed or partial run
   * (`run.retryOfRunId` names it), or the active run with the same dedupe key. */
  async retryRun(args: RunAddress): Promise<RetryRunResponse> {
    const request = create(RetryRunRequestSchema, {
      tenantExternalId: args.tenant,
      runType: args.runType,
      runId: args.runId,
    });
    return this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.retryRun(request, { timeoutMs }),
    );
  }

  /** Who the token is: its name, role and tenant grants (no tenant needed). */
  async getCaller(args: { timeoutMs?: number } = {}): Promise<GetCallerResponse> {
    const request = create(GetCallerRequestSchema, {});
    return this.retrying(args.timeoutMs, (timeoutMs) =>
      this.client.getCaller(request, { timeoutMs }),
    );
  }

  /** Runs `call` until it succeeds, fails with another code than UNAVAILABLE,
   * runs out of attempts or the deadline passes (then DEADLINE_EXCEEDED). */
  private async retrying<T>(
    timeoutMs: number | undefined,
    call: (timeoutMs: number) => Promise<T>,
  ): Promise<T> {
    const deadline = Date.now() + (timeoutMs ?? this.defaultTimeoutMs);
    let backoffMs = 100;
    for (let attempt = 1; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) throw new RunsError(Code.DeadlineExceeded, "deadline exceeded");
      try {
        return await call(left);
      } catch (thrown) {
        const error = toRunsError(thrown);
        if (error.code !== Code.Unavailable || attempt >= this.maxAttempts) throw error;
        const pause = Math.min(backoffMs * (0.8 + Math.random() * 0.4), deadline - Date.now());
        if (pause <= 0) throw error;
        await sleep(pause);
        backoffMs = Math.min(backoffMs * 2, 2_000);
      }
    }
  }
}

// Typed errors: every failed call rejects with a RunsError carrying the gRPC
// status code, the server's message and, for INVALID_ARGUMENT, the fields
// named by the google.rpc.BadRequest details (read with the generated types).
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";

/** One invalid field of a request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  field: string;
  description: string;
}

/** The gRPC status code names, as in grpc-status: "invalid_argument", ... */
export type StatusName =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated";

const NAMES: Record<Code, StatusName> = {
  [Code.Canceled]: "canceled",
  [Code.Unknown]: "unknown",
  [Code.InvalidArgument]: "invalid_argument",
  [Code.DeadlineExceeded]: "deadline_exceeded",
  [Code.NotFound]: "not_found",
  [Code.AlreadyExists]: "already_exists",
  [Code.PermissionDenied]: "permission_denied",
  [Code.ResourceExhausted]: "resource_exhausted",
  [Code.FailedPrecondition]: "failed_precondition",
  [Code.Aborted]: "aborted",
  [Code.OutOfRange]: "out_of_range",
  [Code.Unimplemented]: "unimplemented",
  [Code.Internal]: "internal",
  [Code.Unavailable]: "unavailable",
  [Code.DataLoss]: "data_loss",
  [Code.Unauthenticated]: "unauthenticated",
};

/** A failed call to runsvc. */
export class RunsError extends Error {
  override readonly name = "RunsError";

  constructor(
    /** The gRPC status code. */
    readonly code: Code,
    message: string,
    /** For INVALID_ARGUMENT: the invalid fields. */
    readonly violations: readonly FieldViolation[] = [],
  ) {
    super(message);
  }

  /** The status code's name, for example "invalid_argument". */
  get status(): StatusName {
    return NAMES[this.code];
  }

  /** The first invalid field, for example "options.item_ids[3]". */
  get field(): string | undefined {
    return this.violations[0]?.field;
  }

  override toString(): string {
    return `${this.status}: ${this.message}`;
  }
}

/** The RunsError for anything a call threw. A call the caller did not cancel
 * whose HTTP/2 stream or connection was torn down (Connect reports CANCELED,
 * e.g. plaintext to a TLS port) is UNAVAILABLE: the server is not usable. */
export function toRunsError(error: unknown, callerCanceled = false): RunsError {
  if (error instanceof RunsError) return error;
  const connectError = ConnectError.from(error);
  if (connectError.code === Code.Canceled && !callerCanceled) {
    return new RunsError(Code.Unavailable, `connection failed: ${connectError.rawMessage}`);
  }
  const violations: FieldViolation[] = connectError
    .findDetails(BadRequestSchema)
    .flatMap((badRequest) =>
      badRequest.fieldViolations.map(({ field, description }) => ({ field, description })),
    );
  return new RunsError(connectError.code, connectError.rawMessage, violations);
}

// The gateway's HTTP API as the console uses it: the token from this tab's
// session storage in the Authorization header of every call (never in a URL
// or a cookie), errors as ApiError, and a 401 handed to one handler.

const TOKEN_KEY = "runsvc.token";
// The console lives at <admin>/ui/; the API at <admin>/.
const ADMIN = new URL("../", document.baseURI);

export const TERMINAL = new Set(["succeeded", "partial", "failed"]);
export const RUN_TYPES = [
  "snapshot_capture",
  "backup_set_add_policies",
  "restore_preview",
  "restore_execute",
];
export const STATUSES = ["queued", "running", "succeeded", "partial", "failed"];

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

let unauthorized = () => {};

/** Called with the ApiError of any 401: the token is gone or was never good. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function url(path, query = {}) {
  const address = new URL(path, ADMIN);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") {
      address.searchParams.set(name, String(value));
    }
  }
  return address;
}

const segment = encodeURIComponent;

export const paths = {
  runs: (tenant) => `t/${segment(tenant)}/runs`,
  start: (tenant, type) => `t/${segment(tenant)}/runs/${segment(type)}`,
  run: (tenant, type, id) => `t/${segment(tenant)}/runs/${segment(type)}/${segment(id)}`,
  watch: (tenant, type, id) => `${paths.run(tenant, type, id)}/watch`,
  items: (tenant, type, id) => `${paths.run(tenant, type, id)}/items`,
  cancel: (tenant, type, id) => `${paths.run(tenant, type, id)}/cancel`,
  retry: (tenant, type, id) => `${paths.run(tenant, type, id)}/retry`,
  whoami: () => "whoami",
};

export function authorized(headers = {}) {
  const all = new Headers(headers);
  const token = session.token;
  if (token) all.set("Authorization", `Bearer ${token}`);
  return all;
}

/** The ApiError for a response that is not ok (reads its JSON error body). */
export async function failure(response) {
  let code = `HTTP_${response.status}`;
  let message = response.statusText || "the request failed";
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // not JSON (a proxy's page): keep the status line
  }
  const error = new ApiError(response.status, code, message);
  if (response.status === 401) unauthorized(error);
  return error;
}

/** One JSON call; resolves to the parsed body, rejects with ApiError. */
export async function call(method, path, { query, body, signal } = {}) {
  const headers = authorized({ Accept: "application/json" });
  const init = { method, headers, signal, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "NETWORK", "the gateway cannot be reached; retry");
  }
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

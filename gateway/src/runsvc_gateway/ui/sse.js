// A run's watch stream (Server-Sent Events) read with fetch, so the token
// travels in the Authorization header; EventSource cannot send one. Resumes
// with Last-Event-ID after a cut, ends after the terminal state.

import { ApiError, TERMINAL, authorized, failure, url } from "./api.js";

const MAX_BACKOFF_MS = 30000;

/** The event stream format (WHATWG HTML, "Parsing an event stream"). */
export class EventStreamParser {
  constructor() {
    this.buffer = "";
    this.data = [];
    this.type = "";
    this.lastId = null;
    this.retry = null;
  }

  /** Feeds decoded text; returns the events it completes. */
  feed(text) {
    this.buffer += text;
    const events = [];
    let end;
    while ((end = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A lone \r at the end may be the first half of \r\n: wait for more.
      if (this.buffer[end] === "\r" && end === this.buffer.length - 1) break;
      const width = this.buffer.startsWith("\r\n", end) ? 2 : 1;
      const line = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + width);
      const event = this.line(line);
      if (event) events.push(event);
    }
    return events;
  }

  line(line) {
    if (line === "") {
      const event =
        this.data.length > 0
          ? { type: this.type || "message", data: this.data.join("\n"), id: this.lastId }
          : null;
      this.data = [];
      this.type = "";
      return event;
    }
    if (line.startsWith(":")) return null; // a comment: keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
    else if (field === "id" && !value.includes("\0")) this.lastId = value;
    else if (field === "retry" && /^\d+$/.test(value)) this.retry = Number(value);
    return null;
  }
}

function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Watches one run until its terminal state or until `signal` aborts.
 * onRun(record) gets every state; onTrouble(error | null) hears of a lost
 * connection (and null once it is back); a 4xx answer ends the watch
 * through onTrouble.
 */
export async function watchRun(path, { signal, onRun, onTrouble = () => {} }) {
  const parser = new EventStreamParser();
  let retryMs = 2000;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const headers = authorized({ Accept: "text/event-stream" });
      if (parser.lastId !== null) headers.set("Last-Event-ID", parser.lastId);
      const response = await fetch(url(path), {
        headers,
        signal,
        cache: "no-store",
        credentials: "omit",
      });
      if (!response.ok) throw await failure(response);
      if (failures > 0) onTrouble(null);
      failures = 0;
      if (await read(response.body, parser, onRun, onTrouble)) return;
      if (parser.retry !== null) retryMs = parser.retry;
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
        onTrouble(error);
        return;
      }
      failures += 1;
      onTrouble(error instanceof ApiError ? error : new ApiError(0, "NETWORK", "connection lost"));
    }
    await pause(Math.min(retryMs * 2 ** failures, MAX_BACKOFF_MS), signal);
  }
}

/** Reads one response; true once the run's terminal state arrived. */
async function read(body, parser, onRun, onTrouble) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      for (const event of parser.feed(value)) {
        const payload = JSON.parse(event.data);
        if (event.type === "error") {
          onTrouble(new ApiError(0, payload.error.code, payload.error.message));
          continue;
        }
        onRun(payload);
        if (TERMINAL.has(payload.status)) return true;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/** Watches many runs with at most `limit` streams open at once (a browser
 * keeps about six connections per host, and the API calls need some). */
export class WatchPool {
  constructor(limit, signal) {
    this.limit = limit;
    this.signal = signal;
    this.open = 0;
    this.waiting = [];
  }

  add(path, handlers) {
    this.waiting.push({ path, handlers });
    this.pump();
  }

  pump() {
    while (this.open < this.limit && this.waiting.length > 0 && !this.signal.aborted) {
      const { path, handlers } = this.waiting.shift();
      this.open += 1;
      watchRun(path, { signal: this.signal, ...handlers }).finally(() => {
        this.open -= 1;
        this.pump();
      });
    }
  }
}

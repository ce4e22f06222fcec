// A tenant's runs, newest first: filters by type and status, pages, and a
// live progress bar for each active run (its watch stream).

import { RUN_TYPES, STATUSES, TERMINAL, call, paths } from "./api.js";
import { badge, countsText, errorBox, fill, h, progressBar, shortId, time } from "./dom.js";
import { go, hashes } from "./nav.js";
import { WatchPool } from "./sse.js";

const PAGE_SIZE = 20;
// Open watch streams at once; the rest wait for a free one (a browser
// keeps about six connections per host, the API calls need some too).
const LIVE_STREAMS = 4;

// Page tokens of the pages before the current one, per tenant and filter.
const pagesBefore = new Map();

function select(id, label, options, value) {
  return [
    h("label", { for: id }, label),
    h(
      "select",
      { id, name: id },
      options.map(([optionValue, text]) =>
        h("option", { value: optionValue, selected: optionValue === value }, text),
      ),
    ),
  ];
}

export async function runsPage({ view, params, query, signal, caller }) {
  const { tenant } = params;
  const type = query.get("type") ?? "";
  const status = query.get("status") ?? "";
  const pageToken = query.get("page") ?? "";
  document.title = `Runs of ${tenant} · runsvc console`;

  const filters = h(
    "form",
    { class: "filters", "aria-label": "Filter runs" },
    select("filter-type", "Type", [["", "All types"], ...RUN_TYPES.map((t) => [t, t])], type),
    select(
      "filter-status",
      "Status",
      [["", "All statuses"], ...STATUSES.map((s) => [s, s])],
      status,
    ),
    h("button", { type: "button", class: "quiet", id: "refresh" }, "Refresh"),
  );
  filters.addEventListener("change", () => {
    go(
      hashes.runs(tenant, {
        type: filters.elements["filter-type"].value,
        status: filters.elements["filter-status"].value,
      }),
    );
  });
  filters.addEventListener("submit", (event) => event.preventDefault());
  filters.querySelector("#refresh").addEventListener("click", () => go(location.hash));

  const body = h(
    "div",
    { class: "list", "aria-busy": "true" },
    h("p", { class: "muted" }, "Loading…"),
  );
  view.replaceChildren(
    h(
      "div",
      { class: "page-head" },
      h("h1", { tabindex: "-1" }, "Runs ", h("span", { class: "muted" }, tenant)),
      caller.role === "operator"
        ? h("a", { class: "button", href: hashes.start(tenant) }, "Start a run")
        : null,
    ),
    filters,
    body,
  );

  const filterKey = `${tenant}|${type}|${status}`;
  const before = pagesBefore.get(filterKey) ?? [];
  let page;
  try {
    page = await call("GET", paths.runs(tenant), {
      query: { runType: type, status, pageSize: PAGE_SIZE, pageToken },
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") return;
    fill(body, errorBox(error));
    body.removeAttribute("aria-busy");
    return;
  }
  body.removeAttribute("aria-busy");
  const runs = page.runs ?? [];
  if (runs.length === 0) {
    fill(
      body,
      h("p", { class: "notice" }, type || status ? "No runs match these filters." : "No runs yet."),
    );
  } else {
    const pool = new WatchPool(LIVE_STREAMS, signal);
    const rows = runs.map((run) => runRow(tenant, run, pool));
    fill(
      body,
      h(
        "table",
        { class: "runs" },
        h("caption", { class: "visually-hidden" }, `Runs of ${tenant}, newest first`),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Run", "Status", "Progress", "Created", "Error"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        h("tbody", {}, rows),
      ),
    );
  }

  const older = page.nextPageToken
    ? h("button", { type: "button", id: "older" }, "Older runs")
    : null;
  older?.addEventListener("click", () => {
    pagesBefore.set(filterKey, [...before, pageToken]);
    go(hashes.runs(tenant, { type, status, page: page.nextPageToken }));
  });
  let newer = null;
  if (pageToken) {
    newer = h(
      "button",
      { type: "button", id: "newer" },
      before.length ? "Newer runs" : "Newest runs",
    );
    newer.addEventListener("click", () => {
      const previous = before.length ? before[before.length - 1] : "";
      pagesBefore.set(filterKey, before.slice(0, -1));
      go(hashes.runs(tenant, { type, status, page: previous }));
    });
  }
  if (older || newer)
    body.append(h("nav", { class: "pager", "aria-label": "Pages of runs" }, newer, older));
}

function runRow(tenant, run, pool) {
  const bar = progressBar(`Progress of run ${shortId(run.id)}`);
  const status = h("td", { "data-label": "Status" });
  const counts = h("span", { class: "counts" });
  const error = h("td", { "data-label": "Error" });
  const row = h(
    "tr",
    { "data-run-id": run.id },
    h(
      "td",
      { "data-label": "Run" },
      h(
        "a",
        { href: hashes.run(tenant, run.type, run.id) },
        h("span", { class: "type" }, run.type),
        " ",
        h("code", {}, shortId(run.id)),
      ),
    ),
    status,
    h("td", { "data-label": "Progress", class: "progress" }, h("div", {}, bar.element, counts)),
    h("td", { "data-label": "Created" }, time(run.createdAt)),
    error,
  );
  const show = (latest) => {
    fill(status, badge(latest.status));
    bar.update(latest);
    counts.textContent = countsText(latest.counts);
    fill(error, latest.safeError ? h("code", { class: "error-code" }, latest.safeError.code) : "");
  };
  show(run);
  if (!TERMINAL.has(run.status)) {
    row.classList.add("live");
    pool.add(paths.watch(tenant, run.type, run.id), {
      onRun: show,
      onTrouble: (trouble) => row.classList.toggle("stale", trouble !== null),
    });
  }
  return row;
}

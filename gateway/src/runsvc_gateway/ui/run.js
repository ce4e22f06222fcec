// One run: live counts, bar, rate and times from its watch stream, the safe
// error and its context, its items (filtered by outcome, paged), and for
// operators Cancel and "Retry failed items", each confirmed first.

import { TERMINAL, call, paths } from "./api.js";
import {
  badge,
  duration,
  errorBox,
  fill,
  h,
  pairs,
  progressBar,
  rate,
  seconds,
  shortId,
  time,
  valueText,
  words,
} from "./dom.js";
import { announce, confirmAction, go, hashes, setFlash, takeFlash } from "./nav.js";
import { watchRun } from "./sse.js";

const ITEMS_PAGE_SIZE = 50;
// While a run moves, its first page of items is read again at most this often.
const ITEMS_REFRESH_MS = 2000;
const OUTCOMES = [
  ["", "All items"],
  ["failed", "Failed"],
  ["succeeded", "Succeeded"],
  ["pending", "Not done yet"],
];

const itemHistory = new Map();

export async function runPage({ view, params, query, signal, caller }) {
  const { tenant, type, id } = params;
  const outcome = query.get("outcome") ?? "";
  const pageToken = query.get("page") ?? "";
  document.title = `Run ${shortId(id)} · runsvc console`;
  const operator = caller.role === "operator";

  const flashText = takeFlash();
  const messages = h(
    "div",
    { class: "messages" },
    flashText ? h("p", { class: "notice" }, flashText) : null,
  );
  const statusSlot = h("span", { class: "run-status" });
  const actions = h("div", { class: "actions" });
  const bar = progressBar("Progress of this run");
  const facts = h("dl", { class: "facts" });
  const failure = h("section", {
    class: "failure",
    "aria-labelledby": "failure-title",
    hidden: true,
  });
  const items = h("section", { class: "items", "aria-labelledby": "items-title" });
  const liveNote = h("p", { class: "live-note muted" });

  view.replaceChildren(
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: hashes.runs(tenant) }, `Runs of ${tenant}`),
    ),
    h(
      "div",
      { class: "page-head" },
      h(
        "h1",
        { tabindex: "-1" },
        h("span", { class: "type" }, type),
        " ",
        h("code", { class: "run-id" }, id),
      ),
      statusSlot,
    ),
    messages,
    h(
      "section",
      { class: "card summary", "aria-label": "Progress" },
      actions,
      bar.element,
      liveNote,
      facts,
    ),
    failure,
    items,
  );

  let run;
  try {
    run = await call("GET", paths.run(tenant, type, id), { signal });
  } catch (error) {
    if (error.name === "AbortError") return;
    fill(messages, errorBox(error));
    return;
  }

  const itemsView = itemsTable({ tenant, type, id, outcome, pageToken, signal, container: items });
  let lastStatus = run.status;
  let refreshTimer = null;
  let lastRefresh = 0;

  const refreshItemsSoon = (terminal) => {
    if (pageToken || refreshTimer) return; // later pages stay as they were read
    const wait = terminal ? 0 : Math.max(0, lastRefresh + ITEMS_REFRESH_MS - Date.now());
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      lastRefresh = Date.now();
      itemsView.load();
    }, wait);
  };
  signal.addEventListener("abort", () => clearTimeout(refreshTimer));

  // Made once and shown or hidden, so a focused button keeps its focus
  // while progress arrives. A viewer gets neither.
  const cancel = h(
    "button",
    { type: "button", class: "danger", id: "cancel-run", hidden: true },
    "Cancel run",
  );
  const retry = h(
    "button",
    { type: "button", id: "retry-run", hidden: true },
    "Retry failed items",
  );
  if (operator) {
    cancel.addEventListener("click", () => cancelRun(cancel));
    retry.addEventListener("click", () => retryRun(retry));
    actions.append(cancel, retry);
  }

  const show = (latest) => {
    run = latest;
    const terminal = TERMINAL.has(run.status);
    fill(statusSlot, badge(run.status));
    bar.update(run);
    fill(facts, factList(run));
    showFailure(failure, run);
    cancel.hidden = terminal;
    retry.hidden = !(terminal && run.counts.failed > 0);
    if (run.status !== lastStatus) {
      announce(`Run ${run.status}`);
      lastStatus = run.status;
    }
  };

  const changed = (latest) => {
    // A cancel's answer may be older than the stream's terminal state.
    if (TERMINAL.has(run.status) && !TERMINAL.has(latest.status)) return;
    show(latest);
    refreshItemsSoon(TERMINAL.has(latest.status));
  };

  const cancelRun = async (button) => {
    const sure = await confirmAction({
      title: "Cancel this run?",
      text: `The ${type} run ${shortId(id)} stops at its next batch and ends failed with CANCELLED; items not done yet fail with that code.`,
      action: "Cancel run",
    });
    if (!sure) return;
    button.disabled = true;
    try {
      changed(await call("POST", paths.cancel(tenant, type, id), { signal }));
      announce("Cancel requested");
    } catch (error) {
      if (error.name === "AbortError") return;
      button.disabled = false;
      fill(messages, errorBox(error));
    }
  };

  const retryRun = async (button) => {
    const sure = await confirmAction({
      title: "Retry the failed items?",
      text: `A new ${type} run starts with the ${run.counts.failed} failed item(s) of run ${shortId(id)}.`,
      action: "Retry failed items",
    });
    if (!sure) return;
    button.disabled = true;
    try {
      const started = await call("POST", paths.retry(tenant, type, id), { signal });
      setFlash(
        started.reused
          ? `A retry of run ${shortId(id)} was still active: this is it.`
          : `Retrying the failed items of run ${shortId(id)}.`,
      );
      go(hashes.run(tenant, started.run.type, started.run.id));
    } catch (error) {
      if (error.name === "AbortError") return;
      button.disabled = false;
      fill(messages, errorBox(error));
    }
  };

  show(run);
  itemsView.load();
  lastRefresh = Date.now();
  if (TERMINAL.has(run.status)) return;

  liveNote.textContent = "Live";
  watchRun(paths.watch(tenant, type, id), {
    signal,
    onRun: changed,
    onTrouble: (trouble) => {
      if (trouble === null) liveNote.textContent = "Live";
      else if (trouble.status >= 400) liveNote.textContent = `Not live: ${trouble.message}`;
      else liveNote.textContent = "Connection lost; reconnecting…";
    },
  }).then(() => {
    if (!signal.aborted && TERMINAL.has(run.status)) liveNote.textContent = "";
  });
}

function factList(run) {
  const { total, succeeded, failed } = run.counts;
  const perSecond = rate(run);
  const entries = [
    ["Done", String(succeeded + failed)],
    ["Total", String(total)],
    ["Succeeded", String(succeeded)],
    ["Failed", String(failed)],
    ["Items/s", perSecond === null ? "—" : perSecond.toFixed(perSecond < 10 ? 2 : 0)],
    ["Created", time(run.createdAt)],
    ["Started", time(run.startedAt)],
    ["Finished", time(run.finishedAt)],
    [
      "Took",
      run.startedAt && run.finishedAt ? duration(seconds(run.startedAt, run.finishedAt)) : "—",
    ],
  ];
  if (run.cancelRequestedAt) entries.push(["Cancel requested", time(run.cancelRequestedAt)]);
  if (run.retryOfRunId) {
    entries.push([
      "Retry of",
      h(
        "a",
        { href: hashes.run(run.tenantExternalId, run.type, run.retryOfRunId) },
        shortId(run.retryOfRunId),
      ),
    ]);
  }
  return entries.map(([label, value]) => [
    h("div", { "data-fact": label }, h("dt", {}, label), h("dd", {}, value)),
  ]);
}

function showFailure(section, run) {
  if (!run.safeError) {
    section.hidden = true;
    section.replaceChildren();
    return;
  }
  section.hidden = false;
  fill(
    section,
    h("h2", { id: "failure-title" }, "Error"),
    h("p", {}, h("code", { class: "error-code", id: "safe-error-code" }, run.safeError.code)),
    pairs(run.safeError.context, "pairs context"),
  );
}

function itemsTable({ tenant, type, id, outcome, pageToken, signal, container }) {
  const key = `${tenant}|${type}|${id}|${outcome}`;
  const before = itemHistory.get(key) ?? [];
  const filter = h(
    "select",
    { id: "filter-outcome", name: "outcome" },
    OUTCOMES.map(([value, text]) => h("option", { value, selected: value === outcome }, text)),
  );
  filter.addEventListener("change", () =>
    go(hashes.run(tenant, type, id, { outcome: filter.value })),
  );
  const body = h("div", { class: "items-body" });
  fill(
    container,
    h(
      "div",
      { class: "section-head" },
      h("h2", { id: "items-title" }, "Items"),
      h("div", { class: "filters" }, h("label", { for: "filter-outcome" }, "Outcome"), filter),
    ),
    body,
  );

  // Reads may overlap (the terminal state asks at once): only the latest is shown.
  let latest = 0;
  const load = async () => {
    const mine = ++latest;
    let page;
    try {
      page = await call("GET", paths.items(tenant, type, id), {
        query: { outcome, pageSize: ITEMS_PAGE_SIZE, pageToken },
        signal,
      });
    } catch (error) {
      if (error.name === "AbortError" || mine !== latest) return;
      fill(body, errorBox(error));
      return;
    }
    if (mine !== latest) return;
    const rows = page.items ?? [];
    const pager = h("nav", { class: "pager", "aria-label": "Pages of items" });
    if (pageToken) {
      const newer = h("button", { type: "button", id: "items-previous" }, "Previous items");
      newer.addEventListener("click", () => {
        itemHistory.set(key, before.slice(0, -1));
        go(hashes.run(tenant, type, id, { outcome, page: before.at(-1) ?? "" }));
      });
      pager.append(newer);
    }
    if (page.nextPageToken) {
      const next = h("button", { type: "button", id: "items-next" }, "More items");
      next.addEventListener("click", () => {
        itemHistory.set(key, [...before, pageToken]);
        go(hashes.run(tenant, type, id, { outcome, page: page.nextPageToken }));
      });
      pager.append(next);
    }
    if (rows.length === 0) {
      fill(
        body,
        h("p", { class: "muted" }, outcome ? `No ${outcome} items.` : "No items yet."),
        pager,
      );
      return;
    }
    fill(
      body,
      h(
        "table",
        { class: "items-table" },
        h("caption", { class: "visually-hidden" }, "Items of this run"),
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["#", "Item", "Outcome", "Error code", "Detail", "Finished"].map((c) =>
              h("th", { scope: "col" }, c),
            ),
          ),
        ),
        h("tbody", {}, rows.map(itemRow)),
      ),
      pager,
    );
  };
  return { load };
}

function itemRow(item) {
  const outcome = item.outcome ?? "pending";
  return h(
    "tr",
    { "data-item-id": item.itemId, "data-outcome": outcome },
    h("td", { "data-label": "#" }, String(item.position)),
    h("td", { "data-label": "Item" }, h("code", {}, item.itemId)),
    h("td", { "data-label": "Outcome" }, h("span", { class: `badge outcome-${outcome}` }, outcome)),
    h(
      "td",
      { "data-label": "Error code" },
      item.errorCode ? h("code", { class: "error-code" }, item.errorCode) : "—",
    ),
    h("td", { "data-label": "Detail", class: "detail" }, detail(item.detail)),
    h("td", { "data-label": "Finished" }, time(item.finishedAt)),
  );
}

function detail(value) {
  if (!value || typeof value !== "object" || Object.keys(value).length === 0) return "—";
  return h(
    "ul",
    { class: "detail-list" },
    Object.entries(value).map(([key, inner]) =>
      h("li", {}, h("span", { class: "key" }, words(key)), " ", valueText(inner)),
    ),
  );
}

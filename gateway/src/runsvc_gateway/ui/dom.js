// Small DOM helpers: elements built from text (never from HTML strings, so
// ids and messages from the API cannot inject markup), formats, and the
// pieces every page shows (status badge, progress bar, error box).

export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: iso, title: iso }, dateTime.format(new Date(iso)));
}

export function seconds(from, to) {
  return (new Date(to).getTime() - new Date(from).getTime()) / 1000;
}

export function duration(totalSeconds) {
  if (!(totalSeconds >= 0)) return "—";
  if (totalSeconds < 60) return `${totalSeconds.toFixed(1)} s`;
  const minutes = Math.floor(totalSeconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(totalSeconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function done(counts) {
  return counts.succeeded + counts.failed;
}

/** Items per second since the run started (until it finished). */
export function rate(run, now = new Date()) {
  if (!run.startedAt) return null;
  const elapsed = seconds(run.startedAt, run.finishedAt ?? now);
  if (elapsed <= 0) return null;
  return done(run.counts) / elapsed;
}

export function shortId(id) {
  return id.length > 8 ? id.slice(0, 8) : id;
}

export function badge(status) {
  return h("span", { class: `badge status-${status}`, "data-status": status }, status);
}

/** A progress bar of a run: succeeded and failed parts of the total. */
export function progressBar(label) {
  const ok = h("span", { class: "ok" });
  const bad = h("span", { class: "bad" });
  const element = h(
    "div",
    { class: "bar", role: "progressbar", "aria-label": label, "aria-valuemin": "0" },
    ok,
    bad,
  );
  return {
    element,
    update(run) {
      const { total, succeeded, failed } = run.counts;
      const finished = !["queued", "running"].includes(run.status);
      element.dataset.status = run.status;
      if (total === 0) {
        // Items not resolved yet; an empty finished run is complete.
        element.classList.toggle("unknown", !finished);
        element.setAttribute("aria-valuemax", "1");
        element.setAttribute("aria-valuenow", finished ? "1" : "0");
        element.setAttribute("aria-valuetext", finished ? "no items" : "counting items");
        ok.style.width = finished ? "100%" : "0";
        bad.style.width = "0";
        return;
      }
      element.classList.remove("unknown");
      element.setAttribute("aria-valuemax", String(total));
      element.setAttribute("aria-valuenow", String(succeeded + failed));
      element.setAttribute(
        "aria-valuetext",
        `${succeeded + failed} of ${total} items done, ${failed} failed`,
      );
      ok.style.width = `${(100 * succeeded) / total}%`;
      bad.style.width = `${(100 * failed) / total}%`;
    },
  };
}

export function countsText(counts) {
  const text = `${done(counts)} / ${counts.total}`;
  return counts.failed > 0 ? `${text} (${counts.failed} failed)` : text;
}

/** A value of an error context or item detail, as text. */
export function valueText(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return value.map(valueText).join(", ");
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([key, inner]) => `${key}: ${valueText(inner)}`)
      .join(", ");
  }
  return String(value);
}

/** "changedKeys" -> "changed keys" */
export function words(name) {
  return name.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase();
}

/** An object as a list of label/value pairs. */
export function pairs(object, className = "pairs") {
  return h(
    "dl",
    { class: className },
    Object.entries(object ?? {}).map(([key, value]) => [
      h("dt", {}, words(key)),
      h("dd", {}, valueText(value)),
    ]),
  );
}

export function errorBox(error) {
  const text = error.status === 0 ? error.message : `${error.message} (${error.code})`;
  return h("p", { class: "notice error", role: "alert" }, text);
}

// Start a run: type, target, optional item ids; then its page, watching it.

import { RUN_TYPES, call, paths } from "./api.js";
import { errorBox, h } from "./dom.js";
import { go, hashes, setFlash } from "./nav.js";

const ABOUT = {
  snapshot_capture:
    "Stores a snapshot of each policy. Target: an optional scope label. Items: policy ids (default: every live policy).",
  backup_set_add_policies:
    "Snapshots each policy and adds it to a backup set. Target: the backup set id (required). Items: policy ids (required).",
  restore_preview:
    "Compares each backup item with the live policy (create, update, unchanged); writes nothing. Target: the backup set id (required). Items: backup item ids (default: all).",
  restore_execute:
    "Writes each backup item back to the tenant. Target: the backup set id (required). Items: backup item ids (default: all).",
};

/** One id per line or comma; blank means the run type's default set. */
export function parseItemIds(text) {
  const ids = text
    .split(/[\n,]/)
    .map((id) => id.trim())
    .filter((id) => id !== "");
  return ids.length > 0 ? ids : null;
}

export function startPage({ view, params, caller }) {
  const { tenant } = params;
  document.title = `Start a run · ${tenant} · runsvc console`;
  const heading = h(
    "h1",
    { tabindex: "-1" },
    "Start a run ",
    h("span", { class: "muted" }, tenant),
  );
  if (caller.role !== "operator") {
    view.replaceChildren(
      heading,
      h(
        "p",
        { class: "notice" },
        "This token is a viewer's: it may look at runs but not start them.",
      ),
    );
    return;
  }
  const type = h(
    "select",
    { id: "run-type", name: "runType", required: true, "aria-describedby": "run-type-hint" },
    RUN_TYPES.map((name) => h("option", { value: name }, name)),
  );
  const typeHint = h("p", { id: "run-type-hint", class: "hint" }, ABOUT[type.value]);
  type.addEventListener("change", () => {
    typeHint.textContent = ABOUT[type.value];
  });
  const target = h("input", {
    id: "target",
    name: "targetObjectId",
    autocomplete: "off",
    "aria-describedby": "target-hint",
  });
  const itemIds = h("textarea", {
    id: "item-ids",
    name: "itemIds",
    rows: "4",
    "aria-describedby": "item-ids-hint",
  });
  const problem = h("div", { id: "start-problem" });
  const submit = h("button", { type: "submit" }, "Start run");
  const form = h(
    "form",
    { class: "card form", "aria-labelledby": "start-title" },
    h("label", { for: "run-type" }, "Run type"),
    type,
    typeHint,
    h("label", { for: "target" }, "Target object id"),
    target,
    h(
      "p",
      { id: "target-hint", class: "hint" },
      "A backup set id, or a scope label for snapshot_capture. Leave empty for none.",
    ),
    h("label", { for: "item-ids" }, "Item ids (optional)"),
    itemIds,
    h(
      "p",
      { id: "item-ids-hint", class: "hint" },
      "One per line or separated by commas. Empty: the run type's default set.",
    ),
    problem,
    submit,
  );
  heading.id = "start-title";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    if (target.value.trim()) body.targetObjectId = target.value.trim();
    const ids = parseItemIds(itemIds.value);
    if (ids !== null) body.itemIds = ids;
    submit.disabled = true;
    problem.replaceChildren();
    try {
      const started = await call("POST", paths.start(tenant, type.value), { body });
      if (started.reused) setFlash("An identical run was still active: this is it.");
      go(hashes.run(tenant, started.run.type, started.run.id));
    } catch (error) {
      problem.replaceChildren(errorBox(error));
      submit.disabled = false;
    }
  });
  view.replaceChildren(heading, form);
}

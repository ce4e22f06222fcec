// Which tenant to look at: the token's grants, or any id for an all-tenants token.

import { h } from "./dom.js";
import { go, hashes } from "./nav.js";

export function tenantsPage({ view, caller, home }) {
  if (home && !caller.allTenants && caller.tenants.length === 1) {
    go(hashes.runs(caller.tenants[0]), { replace: true });
    return;
  }
  document.title = "Tenants · runsvc console";
  const input = h("input", { id: "tenant", name: "tenant", required: true, autocomplete: "off" });
  const form = h(
    "form",
    { class: "inline-form" },
    h("label", { for: "tenant" }, "Tenant external id"),
    input,
    h("button", { type: "submit" }, "Open"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const tenant = input.value.trim();
    if (tenant) go(hashes.runs(tenant));
  });
  const grants = caller.allTenants
    ? h("p", {}, "This token is granted every tenant: open one by its external id.")
    : h(
        "ul",
        { class: "tenant-list" },
        caller.tenants.map((tenant) => h("li", {}, h("a", { href: hashes.runs(tenant) }, tenant))),
      );
  view.replaceChildren(
    h("h1", { tabindex: "-1" }, "Tenants"),
    h("section", { class: "card" }, grants, form),
  );
}

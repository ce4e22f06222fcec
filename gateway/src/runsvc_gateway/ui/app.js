// The console's entry point: routes of the URL fragment to pages, the
// header (tenant, caller, sign-out) and the way back to sign-in on a 401.

import { ApiError, call, onUnauthorized, paths, session } from "./api.js";
import { errorBox, fill, h } from "./dom.js";
import { hashes } from "./nav.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { signInPage } from "./signin.js";
import { startPage } from "./start.js";
import { tenantsPage } from "./tenants.js";

const view = document.getElementById("view");
const state = {
  caller: null,
  tenant: null,
  controller: null,
  returnTo: null,
  notice: null,
  // The path of the page shown: the heading gets the focus on a new page
  // only, not when a filter changes the query.
  shownPath: null,
};

const ROUTES = [
  [/^\/t\/([^/]+)\/runs\/([^/]+)\/([^/]+)$/, runPage, ["tenant", "type", "id"]],
  [/^\/t\/([^/]+)\/runs$/, runsPage, ["tenant"]],
  [/^\/t\/([^/]+)\/start$/, startPage, ["tenant"]],
  [/^\/tenants$/, tenantsPage, []],
];

function match(path) {
  for (const [pattern, page, names] of ROUTES) {
    const found = pattern.exec(path);
    if (found) {
      const params = Object.fromEntries(
        names.map((name, i) => [name, decodeURIComponent(found[i + 1])]),
      );
      return { page, params };
    }
  }
  return null;
}

function showHeader() {
  const signedIn = state.caller !== null;
  document.getElementById("nav").hidden = !signedIn || state.tenant === null;
  document.getElementById("who").hidden = !signedIn;
  if (!signedIn) return;
  document.getElementById("who-name").textContent = state.caller.name;
  document.getElementById("who-role").textContent = state.caller.role;
  if (state.tenant !== null) {
    document.getElementById("nav-runs").href = hashes.runs(state.tenant);
    const start = document.getElementById("nav-start");
    start.href = hashes.start(state.tenant);
    start.hidden = state.caller.role !== "operator";
    document.querySelector("#nav-tenant b").textContent = state.tenant;
  }
}

function newController() {
  state.controller?.abort();
  state.controller = new AbortController();
  return state.controller.signal;
}

function signIn(notice = null) {
  newController();
  state.caller = null;
  state.shownPath = null;
  showHeader();
  signInPage({
    view,
    notice,
    onSignedIn(caller) {
      state.caller = caller;
      const back = state.returnTo;
      state.returnTo = null;
      if (back && back !== location.hash) location.hash = back;
      else render();
    },
  });
}

onUnauthorized((error) => {
  session.clear();
  if (state.caller !== null) state.returnTo = location.hash;
  signIn(`Signed out: ${error.message}. Sign in again.`);
});

async function render() {
  const signal = newController();
  if (!session.token) {
    state.returnTo ??= location.hash;
    const notice = state.notice;
    state.notice = null;
    signIn(notice);
    return;
  }
  try {
    state.caller ??= await call("GET", paths.whoami(), { signal });
  } catch (error) {
    if (error.name === "AbortError" || error.status === 401) return;
    fill(view, h("h1", { tabindex: "-1" }, "runsvc console"), errorBox(error));
    return;
  }
  const [path, search = ""] = location.hash.replace(/^#/, "").split("?");
  const found = match(path);
  state.tenant = found?.params.tenant ?? state.tenant;
  showHeader();
  const page = found?.page ?? tenantsPage;
  try {
    await page({
      view,
      params: found?.params ?? {},
      query: new URLSearchParams(search),
      signal,
      caller: state.caller,
      home: found === null,
    });
  } catch (error) {
    if (error.name === "AbortError" || (error instanceof ApiError && error.status === 401)) return;
    fill(view, errorBox(error));
    return;
  }
  if (!signal.aborted && path !== state.shownPath)
    view.querySelector("h1")?.focus({ preventScroll: true });
  state.shownPath = path;
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.clear();
  state.caller = null;
  state.returnTo = null;
  state.notice = "Signed out.";
  state.shownPath = null;
  if (location.hash === hashes.home()) render();
  else location.hash = hashes.home();
});

window.addEventListener("hashchange", render);
render();

// Sign-in: a pasted runsvc token, kept in this tab's session storage only.

import { call, paths, session } from "./api.js";
import { errorBox, h } from "./dom.js";

export function signInPage({ view, notice, onSignedIn }) {
  document.title = "Sign in · runsvc console";
  const problem = h(
    "div",
    { id: "sign-in-problem" },
    notice ? h("p", { class: "notice", role: "alert" }, notice) : null,
  );
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    "aria-describedby": "token-hint",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title", tabindex: "-1" }, "Sign in"),
    problem,
    h("label", { for: "token" }, "runsvc token"),
    input,
    h(
      "p",
      { id: "token-hint", class: "hint" },
      "Paste a token made with ",
      h("code", {}, "runsvc token create"),
      ". It stays in this browser tab (session storage) and is sent only to this gateway, as Authorization: Bearer.",
    ),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    button.disabled = true;
    session.token = token;
    try {
      const caller = await call("GET", paths.whoami());
      onSignedIn(caller);
    } catch (error) {
      // A 401 has already brought the user back here with its message.
      if (error.status !== 401) {
        session.clear();
        problem.replaceChildren(errorBox(error));
      }
    } finally {
      button.disabled = false;
    }
  });
  view.replaceChildren(form);
  input.focus();
}

// Where things are: the console's routes live in the URL's fragment (tenant,
// run, filters, page), never the token. Also the shared dialog and the
// screen-reader announcements.

const segment = encodeURIComponent;

function withQuery(path, query = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}

export const hashes = {
  home: () => "#/",
  tenants: () => "#/tenants",
  runs: (tenant, query) => withQuery(`#/t/${segment(tenant)}/runs`, query),
  run: (tenant, type, id, query) =>
    withQuery(`#/t/${segment(tenant)}/runs/${segment(type)}/${segment(id)}`, query),
  start: (tenant) => `#/t/${segment(tenant)}/start`,
};

/** Goes to a fragment; `replace` keeps the current one out of the history. */
export function go(hash, { replace = false } = {}) {
  if (location.hash === hash) {
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else if (replace) {
    location.replace(hash);
  } else {
    location.hash = hash;
  }
}

/** Says something to screen readers (the page's polite live region). */
export function announce(text) {
  const region = document.getElementById("announce");
  region.textContent = "";
  // A new text node after a tick is announced even when the text repeats.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

/** Asks for confirmation in a modal dialog; resolves true or false. */
export function confirmAction({ title, text, action }) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const yes = document.getElementById("confirm-yes");
  const no = document.getElementById("confirm-no");
  yes.textContent = action;
  return new Promise((resolve) => {
    const finish = (answer) => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const onYes = () => finish(true);
    const onNo = () => finish(false);
    const onClose = () => finish(false); // Escape
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    no.focus(); // the safe choice has the focus
  });
}

let flash = null;

/** A message for the next page shown (for example after starting a run). */
export function setFlash(text) {
  flash = text;
}

export function takeFlash() {
  const text = flash;
  flash = null;
  return text;
}

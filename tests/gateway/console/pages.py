"""What a person does in the console, step by step, for the console tests."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from tests.support.browser import ConsolePage

# Records every value each progress bar shows (done/total), by run id (the
# run page's own bar under "page"), so a test can tell that a bar moved in
# the open document, without a reload.
RECORD_BARS = """
window.__bars = {};
new MutationObserver(() => {
  for (const bar of document.querySelectorAll("[role=progressbar]")) {
    const key = bar.closest("[data-run-id]")?.dataset.runId ?? "page";
    const value = `${bar.getAttribute("aria-valuenow")}/${bar.getAttribute("aria-valuemax")}`;
    const seen = (window.__bars[key] ??= []);
    if (seen.at(-1) !== value) seen.push(value);
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""

# Form controls that no label names (a <label for>, a wrapping label or aria-label).
UNLABELLED_CONTROLS = """
() => [...document.querySelectorAll("input, select, textarea")]
  .filter((control) => control.checkVisibility())
  .filter((control) => control.labels.length === 0 && !control.getAttribute("aria-label"))
  .map((control) => control.outerHTML)
"""

# Visible text whose contrast with its background is below WCAG AA (4.5:1,
# 3:1 for large text); disabled controls are exempt.
LOW_CONTRAST_TEXT = """
() => {
  const parse = (value) => {
    const parts = value.match(/[\\d.]+/g).map(Number);
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const channel = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const colour = parse(getComputedStyle(e).backgroundColor);
      if (colour.a >= 0.99) return colour;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const low = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode.textContent.trim();
    const element = walker.currentNode.parentElement;
    if (!text || !element.checkVisibility() || element.closest(":disabled")) continue;
    const style = getComputedStyle(element);
    const [a, b] = [luminance(parse(style.color)), luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (Number(style.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) low.push(`${text.slice(0, 40)}: ${ratio.toFixed(2)}`);
  }
  return low;
}
"""

# The outline of the element that has the keyboard focus.
FOCUS_OUTLINE = """
() => {
  const style = getComputedStyle(document.activeElement);
  return { style: style.outlineStyle, width: parseFloat(style.outlineWidth) || 0 };
}
"""


def bar_values(page: Page, key: str = "page") -> list[str]:
    """What RECORD_BARS saw of one bar: "done/total" values in order."""
    return page.evaluate(f"window.__bars[{key!r}] ?? []")


def console_url(gateway_url: str) -> str:
    return f"{gateway_url}/admin/ui/"


def sign_in(tab: ConsolePage, gateway_url: str, token: str) -> Page:
    page = tab.page
    page.goto(console_url(gateway_url))
    page.get_by_label("runsvc token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-name")).to_be_visible()
    return page


def open_tenant(page: Page, tenant: str) -> None:
    """From the tenants page (an all-tenants token) to the tenant's runs."""
    page.get_by_label("Tenant external id").fill(tenant)
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(tenant)


def open_run(page: Page, gateway_url: str, tenant: str, run_type: str, run_id: str) -> None:
    page.goto(f"{console_url(gateway_url)}#/t/{tenant}/runs/{run_type}/{run_id}")
    expect(page.locator(".run-id")).to_have_text(run_id)


def run_status(page: Page) -> Locator:
    return page.locator(".run-status .badge")


def run_bar(page: Page) -> Locator:
    return page.locator(".summary [role=progressbar]")


def item_rows(page: Page) -> Locator:
    return page.locator(".items-table tbody tr")


def show_items(page: Page, outcome: str) -> Locator:
    """Filters the run's items by outcome; the rows once only those are shown."""
    page.get_by_label("Outcome").select_option(outcome)
    expect(page).to_have_url(re.compile(rf"outcome={outcome}"))
    rows = item_rows(page)
    expect(rows.first).to_be_visible()
    expect(page.locator(f".items-table tbody tr:not([data-outcome={outcome}])")).to_have_count(0)
    return rows

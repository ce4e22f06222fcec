"""The console in a real browser (headless Chromium) against the real
gateway, server and worker: what an operator and a viewer see and do, live,
without reloading; no page may log a JavaScript or console error (checked
by the open_tab fixture when each test ends)."""

from __future__ import annotations

import re

import httpx
from playwright.sync_api import Page, expect

from runsvc.tokens import revoke_token
from tests.gateway.console.pages import (
    FOCUS_OUTLINE,
    LOW_CONTRAST_TEXT,
    RECORD_BARS,
    UNLABELLED_CONTROLS,
    bar_values,
    console_url,
    item_rows,
    open_run,
    open_tenant,
    run_bar,
    run_status,
    show_items,
    sign_in,
)
from tests.support.auth import new_token
from tests.support.browser import PHONE
from tests.support.seeding import seed_tenant

FINISH = 90_000  # ms: a run of the slow stack ends well within this


def start_over_http(gateway, tenant: str, run_type: str, body: dict | None = None) -> dict:
    with gateway.client() as http:
        response = http.post(f"/admin/t/{tenant}/runs/{run_type}", json=body)
    assert response.status_code == 201, response.text
    return response.json()["run"]


def stays_in_page(page: Page) -> None:
    """Marks the document; stayed() is true only if it was never reloaded."""
    page.evaluate("window.__sameDocument = true")


def stayed(page: Page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_sign_in_start_a_snapshot_capture_and_watch_it_succeed(
    open_tab, slow_gateway, slow_stack, database_url
):
    tenant = seed_tenant(database_url, policies=8)
    total = len(tenant.policy_ids)
    tab = open_tab()
    page = tab.page
    page.add_init_script(RECORD_BARS)
    page.goto(console_url(slow_gateway.url))
    tab.screenshot("sign-in")
    sign_in(tab, slow_gateway.url, slow_stack.token)
    tab.screenshot("tenants")
    open_tenant(page, tenant.external_id)
    expect(page.get_by_text("No runs yet.")).to_be_visible()

    page.get_by_role("link", name="Start a run").first.click()
    page.get_by_label("Run type").select_option("snapshot_capture")
    tab.screenshot("start-a-run")
    stays_in_page(page)
    page.get_by_role("button", name="Start run").click()

    expect(page.locator(".run-id")).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
    expect(run_status(page)).to_have_text("succeeded", timeout=FINISH)
    bar = run_bar(page)
    expect(bar).to_have_attribute("aria-valuemax", str(total))
    expect(bar).to_have_attribute("aria-valuenow", str(total))
    assert stayed(page), "the run page was reloaded"
    shown = bar_values(page)
    assert shown[-1] == f"{total}/{total}"
    assert any(value != shown[-1] for value in shown), f"the bar never moved: {shown}"
    expect(page.locator("[data-fact=Succeeded] dd")).to_have_text(str(total))
    expect(item_rows(page)).to_have_count(total)
    expect(page.locator(".items-table tbody tr[data-outcome=succeeded]")).to_have_count(total)
    tab.screenshot("run-succeeded")

    run_id = page.locator(".run-id").inner_text()
    page.get_by_role("link", name=f"Runs of {tenant.external_id}").click()
    row = page.locator(f"tr[data-run-id='{run_id}']")
    expect(row.locator(".badge")).to_have_text("succeeded")
    tab.screenshot("runs")


def test_the_runs_list_moves_live(open_tab, slow_gateway, slow_stack, database_url):
    tenant = seed_tenant(database_url, policies=8)
    total = len(tenant.policy_ids)
    tab = open_tab()
    page = tab.page
    page.add_init_script(RECORD_BARS)
    sign_in(tab, slow_gateway.url, slow_stack.token)
    open_tenant(page, tenant.external_id)
    run = start_over_http(slow_gateway, tenant.external_id, "snapshot_capture")
    page.get_by_role("button", name="Refresh").click()
    row = page.locator(f"tr[data-run-id='{run['id']}']")
    stays_in_page(page)
    expect(row.locator(".badge")).to_have_text("succeeded", timeout=FINISH)
    expect(row.locator(".counts")).to_have_text(f"{total} / {total}")
    assert stayed(page), "the list was reloaded"
    shown = bar_values(page, run["id"])
    assert shown[-1] == f"{total}/{total}"
    assert any(value != shown[-1] for value in shown), f"the bar never moved: {shown}"


def test_a_cut_watch_resumes_from_the_last_event(open_tab, make_gateway, slow_stack, database_url):
    """A gateway that ends every watch after a second: the page reconnects
    with Last-Event-ID each time and still sees the run to its end."""
    tenant = seed_tenant(database_url, policies=24)
    gateway = make_gateway(slow_stack.target, "--watch-timeout", "1", stack=slow_stack)
    run = start_over_http(gateway, tenant.external_id, "snapshot_capture")
    tab = open_tab()
    page = tab.page
    watches: list[str | None] = []
    page.on(
        "request",
        lambda request: (
            watches.append(request.headers.get("last-event-id"))
            if request.url.endswith("/watch")
            else None
        ),
    )
    sign_in(tab, gateway.url, slow_stack.token)
    open_run(page, gateway.url, tenant.external_id, "snapshot_capture", run["id"])
    expect(run_status(page)).to_have_text("succeeded", timeout=FINISH)
    expect(run_bar(page)).to_have_attribute("aria-valuenow", str(len(tenant.policy_ids)))
    assert len(watches) >= 2, "the watch was never cut and resumed"
    assert watches[0] is None
    resumed = [int(version) for version in watches[1:] if version is not None]
    assert resumed == sorted(resumed) and len(resumed) == len(watches) - 1


# The console's page sizes (runs.js, run.js).
RUNS_PAGE = 20
ITEMS_PAGE = 50


def test_runs_and_items_are_paged(open_tab, idle_gateway, idle_stack, gateway, stack, database_url):
    tenant = seed_tenant(database_url, policies=1)
    started = [
        start_over_http(
            idle_gateway, tenant.external_id, "snapshot_capture", {"targetObjectId": f"scope-{i}"}
        )["id"]
        for i in range(RUNS_PAGE + 1)
    ]
    tab = open_tab()
    page = sign_in(tab, idle_gateway.url, idle_stack.token)
    open_tenant(page, tenant.external_id)
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(RUNS_PAGE)
    expect(rows.first).to_have_attribute("data-run-id", started[-1])  # newest first
    # Every run is queued: their watches share a few connections, and the
    # page still answers.
    page.get_by_role("button", name="Older runs").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", started[0])
    page.get_by_role("button", name="Newer runs").click()
    expect(rows).to_have_count(RUNS_PAGE)
    page.get_by_label("Status").select_option("succeeded")
    expect(page.get_by_text("No runs match these filters.")).to_be_visible()

    many = seed_tenant(database_url, policies=ITEMS_PAGE + 10)
    run = start_over_http(gateway, many.external_id, "snapshot_capture")
    operator = sign_in(open_tab(), gateway.url, stack.token)
    open_run(operator, gateway.url, many.external_id, "snapshot_capture", run["id"])
    expect(run_status(operator)).to_have_text("succeeded", timeout=FINISH)
    items = item_rows(operator)
    expect(items).to_have_count(ITEMS_PAGE)
    operator.get_by_role("button", name="More items").click()
    expect(items).to_have_count(len(many.policy_ids) - ITEMS_PAGE)
    expect(items.first).to_have_attribute("data-item-id", many.policy_ids[ITEMS_PAGE])
    operator.get_by_role("button", name="Previous items").click()
    expect(items).to_have_count(ITEMS_PAGE)
    expect(items.first).to_have_attribute("data-item-id", many.policy_ids[0])


def test_a_partial_run_shows_its_failed_items_and_retries_them(
    open_tab, slow_gateway, slow_stack, database_url
):
    tenant = seed_tenant(database_url, policies=3)
    present = tenant.policy_ids[:2]
    tab = open_tab()
    page = sign_in(tab, slow_gateway.url, slow_stack.token)
    page.goto(f"{console_url(slow_gateway.url)}#/t/{tenant.external_id}/start")
    page.get_by_label("Run type").select_option("backup_set_add_policies")
    page.get_by_label("Target object id").fill(tenant.backup_set_id)
    page.get_by_label("Item ids (optional)").fill("\n".join([*present, "pol-gone"]))
    page.get_by_role("button", name="Start run").click()

    expect(run_status(page)).to_have_text("partial", timeout=FINISH)
    expect(page.locator("#safe-error-code")).to_have_text("ITEMS_FAILED")
    expect(page.locator(".failure")).to_contain_text("pol-gone")
    failed = show_items(page, "failed")
    expect(failed).to_have_count(1)
    expect(failed.first).to_have_attribute("data-item-id", "pol-gone")
    expect(failed.first.locator(".error-code")).to_have_text("POLICY_NOT_FOUND")
    tab.screenshot("run-partial-failed-items")
    succeeded = show_items(page, "succeeded")
    expect(succeeded).to_have_count(len(present))
    expect(succeeded.first.locator(".detail")).to_contain_text("backup item id")

    first_run = page.locator(".run-id").inner_text()
    page.get_by_role("button", name="Retry failed items").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("1 failed item")
    tab.screenshot("confirm-retry")
    dialog.get_by_role("button", name="Retry failed items").click()
    expect(page.locator(".run-id")).not_to_have_text(first_run)
    expect(run_status(page)).to_have_text("failed", timeout=FINISH)
    expect(item_rows(page)).to_have_count(1)
    expect(item_rows(page).first).to_have_attribute("data-item-id", "pol-gone")

    page.get_by_role("link", name=f"Runs of {tenant.external_id}").click()
    row = page.locator(f"tr[data-run-id='{first_run}']")
    expect(row.locator(".badge")).to_have_text("partial")
    expect(row.locator(".error-code")).to_have_text("ITEMS_FAILED")
    page.get_by_label("Status").select_option("partial")
    expect(page.locator("tbody tr")).to_have_count(1)


def test_a_viewer_sees_no_cancel_and_no_start(open_tab, idle_gateway, idle_stack, database_url):
    tenant = seed_tenant(database_url, policies=2)
    run = start_over_http(idle_gateway, tenant.external_id, "snapshot_capture")  # stays queued
    viewer = new_token(database_url, role="viewer", tenants=[tenant.external_id])

    tab = open_tab()
    page = sign_in(tab, idle_gateway.url, viewer)
    # One tenant granted: straight to its runs.
    expect(page.get_by_role("heading", level=1)).to_contain_text(tenant.external_id)
    expect(page.locator("#who-role")).to_have_text("viewer")
    expect(page.locator(f"tr[data-run-id='{run['id']}'] .badge")).to_have_text("queued")
    expect(page.get_by_role("link", name="Start a run")).to_have_count(0)
    open_run(page, idle_gateway.url, tenant.external_id, "snapshot_capture", run["id"])
    expect(run_status(page)).to_have_text("queued")
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry failed items")).to_have_count(0)
    tab.screenshot("run-as-viewer")
    page.goto(f"{console_url(idle_gateway.url)}#/t/{tenant.external_id}/start")
    expect(page.get_by_text("This token is a viewer's")).to_be_visible()
    expect(page.get_by_label("Run type")).to_have_count(0)

    operator = sign_in(open_tab(), idle_gateway.url, idle_stack.token)
    open_run(operator, idle_gateway.url, tenant.external_id, "snapshot_capture", run["id"])
    expect(operator.get_by_role("button", name="Cancel run")).to_be_visible()


def test_cancel_a_long_running_run(open_tab, slow_gateway, slow_stack, database_url):
    tenant = seed_tenant(database_url, policies=60)
    run = start_over_http(slow_gateway, tenant.external_id, "snapshot_capture")
    tab = open_tab()
    page = sign_in(tab, slow_gateway.url, slow_stack.token)
    open_run(page, slow_gateway.url, tenant.external_id, "snapshot_capture", run["id"])
    stays_in_page(page)
    expect(run_status(page)).to_have_text("running", timeout=FINISH)
    expect(run_bar(page)).to_have_attribute("aria-valuemax", str(len(tenant.policy_ids)))
    expect(run_bar(page)).not_to_have_attribute("aria-valuenow", "0")

    page.get_by_role("button", name="Cancel run").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("CANCELLED")
    tab.screenshot("confirm-cancel")
    dialog.get_by_role("button", name="Cancel run").click()

    expect(run_status(page)).to_have_text("failed", timeout=FINISH)
    expect(page.locator("#safe-error-code")).to_have_text("CANCELLED")
    assert stayed(page), "the run page was reloaded"
    cancelled = show_items(page, "failed")
    expect(cancelled.first.locator(".error-code")).to_have_text("CANCELLED")
    done = int(page.locator("[data-fact=Succeeded] dd").inner_text())
    assert done < len(tenant.policy_ids), "the run was not stopped early"
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    tab.screenshot("run-cancelled")


def test_cancel_a_queued_run_and_keep_a_run_by_saying_no(
    open_tab, idle_gateway, idle_stack, database_url
):
    tenant = seed_tenant(database_url, policies=3)
    run = start_over_http(idle_gateway, tenant.external_id, "snapshot_capture")  # stays queued
    tab = open_tab()
    page = sign_in(tab, idle_gateway.url, idle_stack.token)
    open_run(page, idle_gateway.url, tenant.external_id, "snapshot_capture", run["id"])
    expect(run_status(page)).to_have_text("queued")
    page.get_by_role("button", name="Cancel run").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()  # the safe choice
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    with idle_gateway.client() as http:
        path = f"/admin/t/{tenant.external_id}/runs/snapshot_capture/{run['id']}"
        assert http.get(path).json()["status"] == "queued"

    page.get_by_role("button", name="Cancel run").click()
    page.keyboard.press("Escape")  # also says no
    expect(dialog).to_be_hidden()
    expect(run_status(page)).to_have_text("queued")

    page.get_by_role("button", name="Cancel run").click()
    dialog.get_by_role("button", name="Cancel run").click()
    expect(run_status(page)).to_have_text("failed")
    expect(page.locator("#safe-error-code")).to_have_text("CANCELLED")
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    with idle_gateway.client() as http:
        assert http.get(path).json()["safeError"]["code"] == "CANCELLED"


def test_a_refused_token_goes_back_to_sign_in(open_tab, slow_gateway, database_url):
    tenant = seed_tenant(database_url, policies=1)
    tab = open_tab()
    tab.expect_status(401)
    page = tab.page
    page.goto(console_url(slow_gateway.url))
    page.get_by_label("runsvc token").fill("rsvc_0123456789abcdef_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
    expect(page.get_by_label("runsvc token")).to_be_visible()

    name = f"console-signin-{tenant.external_id}"
    token = new_token(database_url, name=name, tenants=[tenant.external_id])
    sign_in(tab, slow_gateway.url, token)
    expect(page.get_by_role("heading", level=1)).to_contain_text(tenant.external_id)
    # The token lives in this tab's session storage only: not in the URL, not a cookie.
    assert page.evaluate("sessionStorage.getItem('runsvc.token')") == token
    assert token not in page.url
    assert page.context.cookies() == []

    assert revoke_token(database_url, name)
    page.get_by_role("button", name="Refresh").click()
    expect(page.get_by_role("alert")).to_contain_text("Signed out")
    assert page.evaluate("sessionStorage.getItem('runsvc.token')") is None
    other = new_token(database_url, tenants=[tenant.external_id])
    page.get_by_label("runsvc token").fill(other)
    page.get_by_role("button", name="Sign in").click()
    # Back where the user was.
    expect(page.get_by_role("heading", level=1)).to_contain_text(tenant.external_id)
    expect(page).to_have_url(re.compile(rf"#/t/{tenant.external_id}/runs$"))


def test_pages_fit_a_phone_width_window(open_tab, slow_gateway, slow_stack, database_url):
    tenant = seed_tenant(database_url, policies=3)
    run = start_over_http(
        slow_gateway,
        tenant.external_id,
        "backup_set_add_policies",
        {"targetObjectId": tenant.backup_set_id, "itemIds": [*tenant.policy_ids, "pol-gone"]},
    )
    tab = open_tab(viewport=PHONE)
    page = tab.page
    page.goto(console_url(slow_gateway.url))
    assert tab.horizontal_overflow() == 0
    tab.screenshot("phone-sign-in")
    sign_in(tab, slow_gateway.url, slow_stack.token)
    open_run(page, slow_gateway.url, tenant.external_id, run["type"], run["id"])
    expect(run_status(page)).to_have_text("partial", timeout=FINISH)
    expect(item_rows(page)).to_have_count(len(tenant.policy_ids) + 1)
    assert tab.horizontal_overflow() == 0
    tab.screenshot("phone-run")
    page.get_by_role("link", name=f"Runs of {tenant.external_id}").click()
    expect(page.locator(f"tr[data-run-id='{run['id']}']")).to_be_visible()
    assert tab.horizontal_overflow() == 0
    tab.screenshot("phone-runs")
    page.goto(f"{console_url(slow_gateway.url)}#/t/{tenant.external_id}/start")
    expect(page.get_by_label("Run type")).to_be_visible()
    assert tab.horizontal_overflow() == 0
    tab.screenshot("phone-start")


def test_served_files_and_their_headers(slow_gateway):
    with httpx.Client(base_url=slow_gateway.url, timeout=30) as http:
        moved = http.get("/admin/ui")
        assert moved.status_code == 308 and moved.headers["location"] == "/admin/ui/"
        index = http.get("/admin/ui/")
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        policy = index.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "connect-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert index.headers["x-content-type-options"] == "nosniff"
        # Every script and stylesheet the page names is served, from this gateway.
        for asset in re.findall(r'(?:src|href)="([^"#]+)"', index.text):
            assert "//" not in asset, f"{asset} is not the gateway's own"
            assert http.get(f"/admin/ui/{asset}").status_code == 200, asset
        assert http.get("/admin/ui/app.js").headers["content-type"].startswith("text/javascript")
        again = http.get("/admin/ui/app.js", headers={"If-None-Match": index.headers["etag"]})
        assert again.status_code == 200  # another file's tag does not match
        etag = http.get("/admin/ui/app.js").headers["etag"]
        assert http.get("/admin/ui/app.js", headers={"If-None-Match": etag}).status_code == 304
        missing = http.get("/admin/ui/nothing-here.js")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "NOT_FOUND"
        # Nothing outside ui/ is served (cli.py sits one folder up).
        assert http.get("/admin/ui/..%2Fcli.py").status_code == 404
        assert http.get("/admin/ui/%2e%2e/cli.py").status_code == 404


def test_accessible_basics(open_tab, slow_gateway, slow_stack, database_url):
    """Every control has a label, the keyboard focus is visible, and text
    has WCAG AA contrast, on each page."""
    tenant = seed_tenant(database_url, policies=2)
    run = start_over_http(
        slow_gateway,
        tenant.external_id,
        "backup_set_add_policies",
        {"targetObjectId": tenant.backup_set_id, "itemIds": [tenant.policy_ids[0], "pol-gone"]},
    )
    tab = open_tab()
    page = tab.page
    page.goto(console_url(slow_gateway.url))
    check_page(page, "sign-in")
    sign_in(tab, slow_gateway.url, slow_stack.token)
    check_page(page, "tenants")
    open_run(page, slow_gateway.url, tenant.external_id, run["type"], run["id"])
    expect(run_status(page)).to_have_text("partial", timeout=FINISH)
    expect(item_rows(page)).to_have_count(2)
    check_page(page, "run")
    page.get_by_role("link", name=f"Runs of {tenant.external_id}").click()
    expect(page.locator(f"tr[data-run-id='{run['id']}']")).to_be_visible()
    check_page(page, "runs")
    page.get_by_role("link", name="Start a run").first.click()
    expect(page.get_by_label("Run type")).to_be_visible()
    check_page(page, "start")


def check_page(page: Page, name: str) -> None:
    assert page.evaluate(UNLABELLED_CONTROLS) == [], f"{name}: controls without a label"
    assert page.evaluate(LOW_CONTRAST_TEXT) == [], f"{name}: text below AA contrast"
    page.keyboard.press("Tab")
    outline = page.evaluate(FOCUS_OUTLINE)
    assert outline["style"] != "none" and outline["width"] >= 2, f"{name}: focus not visible"

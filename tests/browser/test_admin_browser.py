"""The run admin in a real headless chromium: log in, list, detail with diagram, cancel action."""

import contextlib
import os
import re
from pathlib import Path

import pytest

import squidmesh
from squidmesh.models import WorkflowRun
from squidmesh.testing import drain

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
# Debian's chromium, offline: no Playwright download, no background traffic.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PASSWORD = "browser-test-pw"


@pytest.fixture
def runs(transactional_db, django_user_model):
    """A superuser and runs in every interesting state (executed inline, then two left pending)."""
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    shipped = squidmesh.start_run(
        "shop.order_fulfilment", {"order_ref": "A-1001", "amount_cents": 4200, "declines": 1}
    )
    refunded = squidmesh.start_run(
        "shop.order_fulfilment",
        {"order_ref": "A-1002", "amount_cents": 999, "card": "stolen", "operator": "zoe"},
        trigger="backoffice",
    )
    failed = squidmesh.start_run("tests.flaky", {"fail_times": 5})
    squidmesh.start_run("shop.daily_report", {}, trigger="on_demand")
    drain(include_delayed=True)
    to_cancel = squidmesh.start_run(
        "shop.order_fulfilment", {"order_ref": "A-1003", "amount_cents": 100}
    )
    squidmesh.start_run("tests.three_steps", {"label": "still pending"})
    states = {
        run.pk: run.status for run in WorkflowRun.objects.all()
    }  # sanity: the inline drain did its job
    assert states[shipped.pk] == "completed" and states[failed.pk] == "failed"
    return {"shipped": shipped, "refunded": refunded, "failed": failed, "to_cancel": to_cancel}


@contextlib.contextmanager
def browser_page(base_url):
    """Yield a chromium page; the ORM must not be used inside (Playwright runs an event loop)."""
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`, "
        "as .ci/extra-install.sh does), or deselect with -m 'not browser'"
    )
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.base_url = base_url
        try:
            yield page
        finally:
            page.screenshot(path=str(ARTIFACTS / "admin-last-page.png"), full_page=True)
            browser.close()


def log_in(page):
    page.goto(f"{page.base_url}/admin/login/?next=/admin/squidmesh/workflowrun/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/squidmesh/workflowrun/")


def test_admin__list_detail_diagram_and_cancel_in_a_real_browser(runs, live_server):
    with browser_page(live_server.url) as page:
        operate_the_admin(page, runs)

    statuses = dict(WorkflowRun.objects.values_list("pk", "status"))
    assert statuses[runs["to_cancel"].pk] == "cancelled"
    assert statuses[runs["shipped"].pk] == "completed"


def operate_the_admin(page, runs):
    log_in(page)

    # The run list: a row per run, coloured status badges, newest first.
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 6
    assert page.locator("#result_list .squidmesh-status-completed").count() == 3
    assert page.locator("#result_list .squidmesh-status-failed").count() == 1
    assert page.locator("#result_list .squidmesh-status-pending").count() == 2
    badge = page.locator("#result_list .squidmesh-status-failed").first
    assert badge.evaluate("node => getComputedStyle(node).backgroundColor") == "rgb(198, 40, 40)"
    page.screenshot(path=str(ARTIFACTS / "admin-run-list.png"), full_page=True)

    # Search by a payload value, then open the run's detail page.
    page.fill("#searchbar", "A-1001")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    assert rows.count() == 1
    page.click(f"#result_list a:has-text('{str(runs['shipped'].pk)[:8]}')")
    page.wait_for_url(re.compile(rf"/{runs['shipped'].pk}/change/"))

    diagram = page.locator("svg.squidmesh-diagram")
    assert diagram.is_visible()
    assert diagram.get_attribute("data-workflow") == "shop.order_fulfilment"
    statuses = {
        node.get_attribute("data-step"): node.get_attribute("data-status")
        for node in page.locator("svg.squidmesh-diagram g.squidmesh-node").all()
    }
    assert statuses == {
        "reserve_stock": "completed",
        "fraud_screening": "completed",
        "announce_charge": "completed",
        "charge_card": "completed",
        "ship": "completed",
        "refund_and_notify": "not-reached",
        "complete": "completed",
    }
    box = diagram.bounding_box()
    assert box["width"] > 600 and box["height"] > 80  # drawn, not collapsed
    charge = page.locator("#step-charge_card")
    assert charge.locator("tr.squidmesh-attempt-row").count() == 2
    assert "gateway declined (attempt 1)" in charge.inner_text()
    assert '"order_ref": "A-1001"' in page.locator("#squidmesh-payload pre").inner_text()
    page.screenshot(path=str(ARTIFACTS / "admin-run-detail.png"), full_page=True)

    # A failed run: the failing step is red and outlined as where the run stopped.
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/{runs['failed'].pk}/change/")
    failed_node = page.locator('svg.squidmesh-diagram g[data-step="flaky"]')
    assert failed_node.get_attribute("data-status") == "failed"
    assert failed_node.get_attribute("data-current") == "true"
    assert page.locator("#step-flaky tr.squidmesh-attempt-row").count() == 3
    page.screenshot(path=str(ARTIFACTS / "admin-run-detail-failed.png"), full_page=True)

    # Bulk cancel of a pending and a completed run, through the confirmation page.
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/")
    page.check(f"input[name=_selected_action][value='{runs['to_cancel'].pk}']")
    page.check(f"input[name=_selected_action][value='{runs['shipped'].pk}']")
    page.select_option("select[name=action]", "cancel_runs")
    page.click("button[name=index], .actions button[type=submit]")
    page.wait_for_selector(".squidmesh-confirm-table")
    confirmation = page.locator("#content-main").inner_text()
    assert "will be cancelled" in confirmation
    assert "Not allowed: already completed, cannot be cancelled" in confirmation
    page.screenshot(path=str(ARTIFACTS / "admin-cancel-confirmation.png"), full_page=True)
    page.click("input[type=submit][value='Yes, cancel']")
    page.wait_for_url(re.compile(r"/admin/squidmesh/workflowrun/(\?.*)?$"))

    messages = page.locator("ul.messagelist li")
    texts = [messages.nth(i).inner_text() for i in range(messages.count())]
    short_cancelled, short_done = str(runs["to_cancel"].pk)[:8], str(runs["shipped"].pk)[:8]
    assert any(re.search(rf"Run {short_cancelled} .* cancelled\.", text) for text in texts), texts
    assert any(
        short_done in text and "was not cancelled" in text and "already completed" in text
        for text in texts
    ), texts
    assert page.locator("ul.messagelist li.warning").count() == 1
    cancelled_row = page.locator(f"#result_list tr:has(input[value='{runs['to_cancel'].pk}'])")
    assert cancelled_row.locator(".squidmesh-status-cancelled").count() == 1
    page.screenshot(path=str(ARTIFACTS / "admin-cancel-result.png"), full_page=True)

    # The workflows page draws every registered workflow.
    page.click("text=Registered workflows")
    page.wait_for_url("**/workflowrun/workflows/")
    assert page.locator("svg.squidmesh-diagram").count() == len(squidmesh.registry.names())
    page.screenshot(path=str(ARTIFACTS / "admin-workflows.png"), full_page=True)

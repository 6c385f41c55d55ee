"""The run admin in a real headless chromium: log in, list, detail with diagram, cancel action."""

import contextlib
import os
import re
from pathlib import Path

import pytest

import squidmesh
from squidmesh import Step
from squidmesh.models import WorkflowRun
from squidmesh.registry import registry
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
#: The narrowest common laptop screen; the run list must fit it.
LAPTOP = {"width": 1366, "height": 768}


def cancel_own_run_then_fail(data, ctx):
    """An operator cancels the run while this step executes; the step then fails."""
    squidmesh.cancel_run(ctx.run_id)
    # A long token without spaces, as real errors have (URLs, ids): it must not widen the page.
    raise squidmesh.StepFailure(
        "gateway timed out while the run was being cancelled: POST https://payments.example.com/"
        "v1/charges/ch_0123456789abcdef0123456789abcdef0123456789abcdef/capture?expand=balance"
    )


def never_reached(data, ctx):
    return {}


class CancelledMidStep(squidmesh.Workflow):
    """Registered only for these tests: a run cancelled while its step fails."""

    name = "tests.cancelled_mid_step"
    triggers = [squidmesh.manual()]

    charge = Step(cancel_own_run_then_fail, on_ok="ship")
    ship = Step(never_reached)


@pytest.fixture
def runs(transactional_db, django_user_model):
    """A superuser and runs in every interesting state (executed inline, then two left pending)."""
    django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD)
    registry.register(CancelledMidStep)
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
    cancelled = squidmesh.start_run("tests.cancelled_mid_step", {})
    drain(include_delayed=True)
    to_cancel = squidmesh.start_run(
        "shop.order_fulfilment", {"order_ref": "A-1003", "amount_cents": 100}
    )
    squidmesh.start_run("tests.three_steps", {"label": "still pending"})
    states = {
        run.pk: run.status for run in WorkflowRun.objects.all()
    }  # sanity: the inline drain did its job
    assert states[shipped.pk] == "completed" and states[failed.pk] == "failed"
    assert states[cancelled.pk] == "cancelled"
    yield {
        "shipped": shipped,
        "refunded": refunded,
        "failed": failed,
        "to_cancel": to_cancel,
        "cancelled": cancelled,
    }
    registry.unregister(CancelledMidStep)


@contextlib.contextmanager
def browser_page(base_url, viewport=None, color_scheme="light"):
    """Yield a chromium page; the ORM must not be used inside (Playwright runs an event loop)."""
    # tests/conftest.py skips these tests (outside CI) when chromium is missing.
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, "
        "as .ci/extra-install.sh does), or deselect with -m 'not browser'"
    )
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport=viewport or {"width": 1600, "height": 1000}, color_scheme=color_scheme
        )
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


def test_admin__fits_a_laptop_screen_and_shows_a_cancelled_run_in_dark_mode(runs, live_server):
    with browser_page(live_server.url, viewport=LAPTOP) as page:
        check_the_laptop_layout(page, runs)
    with browser_page(live_server.url, viewport=LAPTOP, color_scheme="dark") as page:
        check_dark_mode_and_the_cancelled_run(page, runs)


def right_edge(locator):
    box = locator.bounding_box()
    return box["x"] + box["width"]


def check_the_laptop_layout(page, runs):
    log_in(page)
    width = LAPTOP["width"]
    # Every column, the last error's too, is on screen without scrolling sideways.
    results = page.locator("#changelist-form .results")  # scrolls sideways if the table is wider
    for column in ("updated", "duration", "last_error_summary"):
        header = page.locator(f"#result_list th.column-{column}")
        assert header.is_visible(), column
        assert right_edge(header) <= right_edge(results), (column, right_edge(header))
    assert results.evaluate("node => node.scrollWidth <= node.clientWidth")
    assert right_edge(results) <= page.locator("#changelist-filter").bounding_box()["x"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    error = page.locator(
        f"#result_list tr:has(input[value='{runs['failed'].pk}']) td.field-last_error_summary"
    )
    assert error.locator(".squidmesh-list-error").get_attribute("title").startswith("StepFailure:")
    page.screenshot(path=str(ARTIFACTS / "admin-run-list-1366.png"), full_page=True)

    # The steps table of a run with retries stays inside its panel.
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/{runs['shipped'].pk}/change/")
    panel = page.locator("#squidmesh-history")
    table = page.locator("table.squidmesh-history:not(.squidmesh-events)")
    assert right_edge(table) <= right_edge(panel), (right_edge(table), right_edge(panel))
    wrap = page.locator(".squidmesh-history-wrap")
    assert wrap.evaluate("node => node.scrollWidth <= node.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # A finished run does not refresh itself.
    assert page.locator("#squidmesh-auto-refresh").count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin-run-detail-1366.png"), full_page=True)

    # An active run's page reloads itself while the toggle is on, and stops when it is off.
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/{runs['to_cancel'].pk}/change/")
    toggle = page.locator("#squidmesh-auto-refresh")
    assert toggle.is_checked()
    page.evaluate("window.squidmeshBeforeReload = true")
    page.wait_for_function("window.squidmeshBeforeReload === undefined", timeout=15_000)
    page.locator("#squidmesh-auto-refresh").uncheck()
    page.evaluate("window.squidmeshBeforeReload = true")
    page.wait_for_timeout(6_000)
    assert page.evaluate("window.squidmeshBeforeReload") is True
    page.reload()
    assert not page.locator("#squidmesh-auto-refresh").is_checked()  # remembered


def contrast_ratio(foreground, background):
    def luminance(rgb):
        channels = []
        for value in rgb:
            value /= 255
            channels.append(value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4)
        red, green, blue = channels
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    lighter, darker = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


# The text colour and the first opaque background behind the node, as [r, g, b] lists.
COLOURS_JS = """node => {
  const rgb = text => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
  let back = node;
  while (back && getComputedStyle(back).backgroundColor.replace(/\\s/g, "").match(/rgba\\(.*,0\\)|transparent/)) {
    back = back.parentElement;
  }
  return [rgb(getComputedStyle(node).color), rgb(getComputedStyle(back || document.body).backgroundColor)];
}"""


def check_dark_mode_and_the_cancelled_run(page, runs):
    log_in(page)
    # Error text is readable on the dark theme (WCAG AA: 4.5:1).
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/{runs['failed'].pk}/change/")
    error = page.locator("#step-flaky .squidmesh-error").first
    foreground, background = error.evaluate(COLOURS_JS)
    assert sum(background) < 3 * 128, background  # the dark theme is on
    assert contrast_ratio(foreground, background) >= 4.5, (foreground, background)
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/")
    cell = page.locator(".squidmesh-list-error").first
    foreground, background = cell.evaluate(COLOURS_JS)
    assert contrast_ratio(foreground, background) >= 4.5, (foreground, background)

    # The step a cancelled run stopped at is drawn as cancelled there, not as failed.
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/{runs['cancelled'].pk}/change/")
    charge = page.locator('svg.squidmesh-diagram g[data-step="charge"]')
    assert charge.get_attribute("data-status") == "cancelled"
    assert charge.get_attribute("data-current") == "true"
    assert "cancelled here" in page.locator("svg.squidmesh-diagram").inner_html()
    ship = page.locator('svg.squidmesh-diagram g[data-step="ship"]')
    assert ship.get_attribute("data-status") == "not-reached"
    # Its long error wraps inside the steps table, which stays inside its panel.
    panel = page.locator("#squidmesh-history")
    assert right_edge(page.locator("table.squidmesh-history:not(.squidmesh-events)")) <= right_edge(
        panel
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    page.locator("#squidmesh-progress").screenshot(
        path=str(ARTIFACTS / "admin-run-detail-cancelled-diagram.png")
    )
    page.screenshot(path=str(ARTIFACTS / "admin-run-detail-cancelled.png"), full_page=True)


def operate_the_admin(page, runs):
    log_in(page)

    # The run list: a row per run, coloured status badges, newest first.
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 7
    assert page.locator("#result_list .squidmesh-status-completed").count() == 3
    assert page.locator("#result_list .squidmesh-status-cancelled").count() == 1
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

    # The cancel is on record in the run's events: who, from where, when.
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/{runs['to_cancel'].pk}/change/")
    events = page.locator("#squidmesh-events tr.squidmesh-event")
    kinds = [events.nth(i).get_attribute("data-kind") for i in range(events.count())]
    assert kinds[0] == "started" and kinds[-1] == "cancelled", kinds
    cancelled = events.nth(events.count() - 1).inner_text()
    assert "admin" in cancelled and "Admin" in cancelled, cancelled
    page.locator("#squidmesh-events").screenshot(path=str(ARTIFACTS / "admin-run-events.png"))
    page.goto(f"{page.base_url}/admin/squidmesh/workflowrun/")

    # The workflows page draws every registered workflow.
    page.click("text=Registered workflows")
    page.wait_for_url("**/workflowrun/workflows/")
    assert page.locator("svg.squidmesh-diagram").count() == len(squidmesh.registry.names())
    page.screenshot(path=str(ARTIFACTS / "admin-workflows.png"), full_page=True)

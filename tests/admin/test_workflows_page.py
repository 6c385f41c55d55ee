"""The registered-workflows page: triggers, payload fields, steps, transitions, diagrams."""

import re

import pytest

import squidmesh
from tests.admin.conftest import CHANGELIST, WORKFLOWS

pytestmark = pytest.mark.django_db


def section(html, name):
    return html.split(f'id="workflow-{name}"')[1].split("</section>")[0]


def test_workflows_page__lists_every_registered_workflow_with_a_diagram(viewer_client):
    html = viewer_client.get(WORKFLOWS).content.decode()

    listed = re.findall(r'<section class="module squidmesh-workflow" id="workflow-([\w.]+)"', html)
    assert listed == squidmesh.registry.names()
    for name in listed:
        assert f'data-workflow="{name}"' in section(html, name)  # its SVG


def test_workflows_page__shows_triggers_with_cron_and_payload_fields(viewer_client):
    report = section(viewer_client.get(WORKFLOWS).content.decode(), "shop.daily_report")

    assert "<code>0 6 * * *</code> (Europe/Paris)" in report
    assert "nightly" in report and "on_demand" in report
    assert "<code>report_date</code>" in report and "TODAY" in report


def test_workflows_page__shows_steps_retry_timeout_and_transitions(viewer_client):
    order = section(viewer_client.get(WORKFLOWS).content.decode(), "shop.order_fulfilment")

    charge = order.split('<th scope="row">charge_card')[1].split("</tr>")[0]
    assert "3 attempts, backoff 0.5\u20134.0 s with jitter" in charge
    assert "10.0 s" in charge
    assert "<td>ship</td>" in charge and "<td>refund_and_notify</td>" in charge
    assert "choice: ok, stolen" in order


def test_workflows_page__is_linked_from_the_run_list_and_links_back(viewer_client):
    html = viewer_client.get(WORKFLOWS).content.decode()

    assert WORKFLOWS in viewer_client.get(CHANGELIST).content.decode()
    assert f'href="{CHANGELIST}?workflow=shop.daily_report"' in html


def test_workflows_page__denied_without_view_permission(outsider_client, client):
    assert outsider_client.get(WORKFLOWS).status_code == 403
    assert client.get(WORKFLOWS).status_code == 302  # anonymous: to the login page


def test_workflows_page__shows_each_cron_triggers_schedule_state(viewer_client):
    from squidmesh.cron_schedules import cron_triggers

    expected = {(info.workflow, info.trigger): info.state for info in cron_triggers(runs=0)}
    report = section(viewer_client.get(WORKFLOWS).content.decode(), "shop.daily_report")

    state = expected[("shop.daily_report", "nightly")]
    assert f'<div class="squidmesh-schedule" data-state="{state}">' in report
    # Manual triggers have no schedule.
    assert report.count('class="squidmesh-schedule"') == 1


def test_workflows_page__a_cron_triggers_last_run_is_its_last_tick_not_a_manual_start(
    viewer_client,
):
    from squidmesh.cron_schedules import fire

    tick = fire("shop.daily_report", "nightly", intended="2026-05-04T04:00:00+00:00")
    by_hand = squidmesh.start_run("shop.daily_report", {}, trigger="nightly")
    default = squidmesh.start_run("shop.daily_report", {})

    report = section(viewer_client.get(WORKFLOWS).content.decode(), "shop.daily_report")

    assert default.trigger == "on_demand"  # a start without a trigger never picks the cron one
    assert f"<code>{tick[:8]}</code>" in report
    assert str(by_hand.pk)[:8] not in report

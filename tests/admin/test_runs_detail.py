"""The run detail: summary, pretty JSON, step history with attempts, diagram, replay links."""

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import squidmesh
from squidmesh.models import StepRun, WorkflowRun
from squidmesh.testing import drain
from tests.admin.conftest import (
    CHANGELIST,
    completed_run,
    detail_url,
    failed_run,
    pending_run,
    retried_run,
)

pytestmark = pytest.mark.django_db


def test_detail__renders_payload_and_context_as_indented_json(operator_client):
    run = completed_run("pretty <b>label</b>")

    html = operator_client.get(detail_url(run)).content.decode()

    payload = re.search(
        r'id="squidmesh-payload".*?<pre class="squidmesh-json">(.*?)</pre>', html, re.S
    )
    assert "<b>" not in payload.group(1)  # escaped
    assert unescape(payload.group(1)) == '{\n  "label": "pretty <b>label</b>"\n}'
    context = re.search(
        r'id="squidmesh-context".*?<pre class="squidmesh-json">(.*?)</pre>', html, re.S
    )
    assert '\n  "c": 3' in unescape(context.group(1))


def test_detail__lists_step_runs_in_execution_order_with_their_attempts(operator_client):
    run = squidmesh.start_run(
        "tests.flaky_with_fallback", {"fail_times": 1, "terminal": True}
    )  # flaky fails terminally, recover runs, then the log step
    drain(include_delayed=True)

    html = operator_client.get(detail_url(run)).content.decode()

    steps = re.findall(r'<tbody class="squidmesh-step" id="step-(\w+)"', html)
    assert steps == ["flaky", "recover", "done"]
    flaky = html.split('id="step-flaky"')[1].split("</tbody>")[0]
    assert "TerminalFailure: gave up" in flaky
    assert 'squidmesh-status-failed">Failed<' in flaky
    assert flaky.count('class="squidmesh-attempt-row"') == 1


def test_detail__shows_every_attempt_with_number_status_error_and_timing(operator_client):
    run = retried_run()

    html = operator_client.get(detail_url(run)).content.decode()

    rows = re.findall(
        r'<tr class="squidmesh-attempt-row" data-attempt="(\d+)">(.*?)</tr>', html, re.S
    )
    assert [number for number, _ in rows] == ["1", "2"]
    first, second = rows[0][1], rows[1][1]
    assert 'squidmesh-status-failed">Failed<' in first
    assert "StepFailure: flaky failure 1" in first
    assert 'squidmesh-status-succeeded">Succeeded<' in second
    assert re.search(r"<td>\d+ ms</td>|<td>[\d.]+ s</td>", second)


def test_detail__draws_the_workflow_with_the_runs_progress(operator_client):
    run = failed_run()

    html = operator_client.get(detail_url(run)).content.decode()

    svg = re.search(r"<svg [^>]*class=\"squidmesh-diagram\".*?</svg>", html, re.S).group(0)
    assert 'data-workflow="tests.flaky"' in svg
    assert re.search(r'data-step="flaky" data-status="failed" data-current="true"', svg)
    assert 'data-step="complete" data-status="not-reached"' in svg


def test_detail__marks_the_current_step_of_a_pending_run(operator_client):
    run = pending_run()

    html = operator_client.get(detail_url(run)).content.decode()

    assert 'data-step="a" data-status="not-reached" data-current="true"' in html
    assert "No step has started yet." in html


def test_detail__run_of_an_unregistered_workflow_renders_without_a_diagram(operator_client):
    orphan = WorkflowRun.objects.create(
        workflow="gone.workflow", trigger="manual", status="failed", payload={"x": 1}
    )
    StepRun.objects.create(run=orphan, step="old_step", position=1, status="failed")

    response = operator_client.get(detail_url(orphan))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'squidmesh-diagram"' not in html
    assert "is not registered in this deployment" in html
    assert 'id="step-old_step"' in html
    assert "Replay run" not in html


def test_detail__links_the_replay_source_and_its_replays(operator_client):
    source = completed_run()
    replay = squidmesh.replay_run(source.pk)

    source_html = operator_client.get(detail_url(source)).content.decode()
    replay_html = operator_client.get(detail_url(replay)).content.decode()

    assert f'href="{detail_url(replay)}"' in source_html
    assert f'href="{detail_url(source)}"><code>{source.pk}</code>' in replay_html


def test_detail__many_replays_link_to_the_filtered_list(operator_client, monkeypatch):
    monkeypatch.setattr("squidmesh.admin.run_detail.MAX_REPLAYS_LISTED", 2)
    source = completed_run()
    replays = [squidmesh.replay_run(source.pk) for _ in range(3)]

    html = operator_client.get(detail_url(source)).content.decode()
    listed = operator_client.get(CHANGELIST, {"replayed_from__id__exact": str(source.pk)})

    assert f"{CHANGELIST}?replayed_from__id__exact={source.pk}" in html
    assert {str(run.pk) for run in listed.context["cl"].result_list} == {
        str(run.pk) for run in replays
    }


def test_detail__query_count_does_not_grow_with_steps_or_attempts(operator_client):
    small = pending_run()
    big = squidmesh.start_run("tests.flaky_with_fallback", {"fail_times": 1})
    drain(include_delayed=True)  # flaky: 2 attempts, then done: 2 step runs, 3 attempts
    assert StepRun.objects.filter(run=big).count() >= 2

    with CaptureQueriesContext(connection) as few:
        assert operator_client.get(detail_url(small)).status_code == 200
    with CaptureQueriesContext(connection) as many:
        assert operator_client.get(detail_url(big)).status_code == 200

    assert len(many) == len(few)
    # 9 before the audit trail, plus one for the run's events.
    assert len(many) <= 10, [q["sql"] for q in many.captured_queries]


def test_detail__unknown_or_malformed_run_id_redirects_with_a_message(operator_client):
    for bad in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"]:
        response = operator_client.get(
            reverse("admin:squidmesh_workflowrun_change", args=[bad]), follow=True
        )
        assert response.status_code == 200
        assert "doesn\u2019t exist" in response.content.decode()


def test_detail__is_read_only_for_everyone(admin_client):
    run = pending_run()

    html = admin_client.get(detail_url(run)).content.decode()
    post = admin_client.post(detail_url(run), {"status": "completed"})

    assert 'name="_save"' not in html
    assert post.status_code == 403
    run.refresh_from_db()
    assert run.status == "pending"


def test_detail__add_and_delete_pages_are_forbidden(admin_client):
    run = pending_run()

    assert admin_client.get(reverse("admin:squidmesh_workflowrun_add")).status_code == 403
    assert (
        admin_client.get(reverse("admin:squidmesh_workflowrun_delete", args=[run.pk])).status_code
        == 403
    )
    assert (
        admin_client.post(
            reverse("admin:squidmesh_workflowrun_delete", args=[run.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert WorkflowRun.objects.filter(pk=run.pk).exists()


def test_step_runs_and_attempts_have_no_admin_pages(admin_client):
    # Shown inside the run detail only; no page can add, change or delete them.
    assert admin_client.get("/admin/squidmesh/steprun/").status_code == 404
    assert admin_client.get("/admin/squidmesh/stepattempt/").status_code == 404


def test_detail__active_run_page_has_the_auto_refresh_toggle(operator_client):
    waiting = pending_run()

    html = operator_client.get(detail_url(waiting)).content.decode()

    assert 'id="squidmesh-auto-refresh" data-interval="5" checked' in html
    assert "squidmesh/admin/auto_refresh.js" in html


def test_detail__finished_run_page_does_not_refresh(operator_client):
    html = operator_client.get(detail_url(completed_run())).content.decode()

    assert "squidmesh-auto-refresh" not in html
    assert "auto_refresh.js" not in html

"""Admin: the run's Events section, actor/source/reason of actions, single-use confirmations."""

import re

import pytest

import squidmesh
from squidmesh.models import RunEvent, WorkflowRun
from tests.admin.conftest import (
    CHANGELIST,
    cancel_url,
    completed_run,
    detail_url,
    messages_of,
    pending_run,
    replay_url,
)

pytestmark = pytest.mark.django_db


def token_of(response):
    match = re.search(r'name="confirmation" value="([0-9a-f]{32})"', response.content.decode())
    assert match, "the confirmation form carries a one-time token"
    return match.group(1)


def events_of(run):
    return [(e.kind, e.actor, e.source, e.reason) for e in RunEvent.objects.filter(run=run)]


def test_detail__events_section_lists_who_did_what(operator_client):
    run = squidmesh.start_run("tests.three_steps", {"label": "x"}, actor="alice", reason="first")
    squidmesh.cancel_run(run.pk, actor="cli:bob", source="cli", reason="typo in label")

    html = operator_client.get(detail_url(run)).content.decode()

    section = html.split('id="squidmesh-events"', 1)[1].split("</fieldset>", 1)[0]
    rows = re.findall(r'<tr class="squidmesh-event" data-kind="(\w+)">', section)
    assert rows == ["started", "cancelled"]
    assert "<code>cli:bob</code>" in section and "Command line" in section
    assert "typo in label" in section


def test_detail__replay_events_link_both_runs(operator_client):
    source = completed_run()
    replay = squidmesh.replay_run(source.pk, actor="alice", source="admin")

    source_html = operator_client.get(detail_url(source)).content.decode()
    replay_html = operator_client.get(detail_url(replay)).content.decode()

    assert f'href="{detail_url(replay)}"' in source_html.split('id="squidmesh-events"', 1)[1]
    assert f'href="{detail_url(source)}"' in replay_html.split('id="squidmesh-events"', 1)[1]


def test_single_cancel__records_the_operator_from_the_admin_with_the_reason(operator_client):
    run = pending_run()
    page = operator_client.get(cancel_url(run))
    assert 'name="reason"' in page.content.decode()

    operator_client.post(
        cancel_url(run), {"confirm": "yes", "confirmation": token_of(page), "reason": " stuck "}
    )

    assert events_of(run)[-1] == ("cancelled", "operator", "admin", "stuck")


def test_single_replay__the_same_confirmation_posted_twice_starts_one_replay(operator_client):
    source = completed_run()
    form = {"confirm": "yes", "confirmation": token_of(operator_client.get(replay_url(source)))}

    first = operator_client.post(replay_url(source), form)
    second = operator_client.post(replay_url(source), form, follow=True)

    replay = WorkflowRun.objects.get(replayed_from=source)
    assert first["Location"] == detail_url(replay)
    assert second.redirect_chain[-1][0] == detail_url(replay)
    assert any(
        level == "info" and "already replayed" in text for level, text in messages_of(second)
    )
    assert events_of(replay) == [("replay_of", "operator", "admin", "")]


def test_single_replay__a_new_confirmation_replays_again(operator_client):
    source = completed_run()
    for _ in range(2):
        token = token_of(operator_client.get(replay_url(source)))
        operator_client.post(replay_url(source), {"confirm": "yes", "confirmation": token})

    assert WorkflowRun.objects.filter(replayed_from=source).count() == 2


def test_replay_action__double_submit_of_the_confirmation_replays_each_run_once(operator_client):
    first, second = completed_run("one"), completed_run("two")
    selected = {"action": "replay_runs", "_selected_action": [str(first.pk), str(second.pk)]}
    token = token_of(operator_client.post(CHANGELIST, selected))
    confirmed = {**selected, "confirm": "yes", "confirmation": token, "reason": "bad deploy"}

    operator_client.post(CHANGELIST, confirmed)
    operator_client.post(CHANGELIST, confirmed)

    assert WorkflowRun.objects.filter(replayed_from=first).count() == 1
    assert WorkflowRun.objects.filter(replayed_from=second).count() == 1
    assert events_of(first)[-1] == ("replayed", "operator", "admin", "bad deploy")

"""Cancel and replay from the admin: confirmation, per-run outcome messages, permissions, bad input."""

import pytest
from django.contrib.admin.models import LogEntry

import squidmesh
from squidmesh.models import WorkflowRun
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


def action(name, runs, **extra):
    return {"action": name, "_selected_action": [str(run.pk) for run in runs], **extra}


def test_cancel_action__asks_for_confirmation_and_changes_nothing_yet(operator_client):
    done = completed_run()
    waiting = pending_run()

    response = operator_client.post(CHANGELIST, action("cancel_runs", [waiting, done]))

    assert response.status_code == 200
    assert response.templates[0].name == "admin/squidmesh/workflowrun/operation_confirmation.html"
    html = response.content.decode()
    assert "will be cancelled" in html
    assert "Not allowed: already completed, cannot be cancelled" in html
    assert 'name="confirm" value="yes"' in html
    waiting.refresh_from_db()
    assert waiting.status == "pending"


@pytest.mark.parametrize(
    ("name", "refused"),
    [("cancel_runs", "can be cancelled"), ("replay_runs", "can be replayed")],
)
def test_action__every_selected_run_refused_offers_no_confirm_button(
    operator_client, name, refused
):
    done = completed_run()
    cancelled = squidmesh.cancel_run(pending_run().pk)
    runs = [done, cancelled] if name == "cancel_runs" else []
    if name == "replay_runs":  # a run of a workflow no longer registered cannot be replayed
        runs = [pending_run()]
        WorkflowRun.objects.filter(pk=runs[0].pk).update(workflow="gone.workflow")

    response = operator_client.post(CHANGELIST, action(name, runs))

    html = response.content.decode()
    assert f"None of the selected runs {refused}" in html
    assert 'type="submit"' not in html.split('id="content-main"')[1]
    assert 'name="confirm"' not in html
    assert "Cancel 0 runs" not in html and "Replay 0 runs" not in html


def test_single_cancel__terminal_run_confirmation_offers_no_confirm_button(operator_client):
    done = completed_run()

    html = operator_client.get(cancel_url(done)).content.decode()

    assert "None of the selected runs can be cancelled" in html
    assert 'name="confirm"' not in html


def test_cancel_action__confirmed_cancels_allowed_runs_and_warns_about_the_others(
    operator_client,
):
    done = completed_run()
    waiting = pending_run()

    response = operator_client.post(
        CHANGELIST, action("cancel_runs", [waiting, done], confirm="yes"), follow=True
    )

    shown = messages_of(response)
    assert ("success", f"Run {_link(waiting)} (tests.three_steps) cancelled.") in shown
    warning = [text for level, text in shown if level == "warning"]
    assert len(warning) == 1
    assert str(done.pk)[:8] in warning[0]
    assert "was not cancelled" in warning[0] and "already completed" in warning[0]
    waiting.refresh_from_db()
    done.refresh_from_db()
    assert (waiting.status, done.status) == ("cancelled", "completed")
    assert LogEntry.objects.filter(object_id=str(waiting.pk)).count() == 1
    assert not LogEntry.objects.filter(object_id=str(done.pk)).exists()


def test_replay_action__starts_linked_runs_and_reports_each(operator_client):
    first, second = completed_run("one"), completed_run("two")

    response = operator_client.post(
        CHANGELIST, action("replay_runs", [first, second], confirm="yes"), follow=True
    )

    replays = WorkflowRun.objects.filter(replayed_from__in=[first, second])
    assert {(r.replayed_from_id, r.payload["label"]) for r in replays} == {
        (first.pk, "one"),
        (second.pk, "two"),
    }
    successes = [text for level, text in messages_of(response) if level == "success"]
    assert len(successes) == 2
    for replay in replays:
        assert any(str(replay.pk)[:8] in text for text in successes)


def test_replay_action__unregistered_workflow_is_a_warning_naming_the_run(operator_client):
    orphan = WorkflowRun.objects.create(workflow="gone.workflow", trigger="manual", status="failed")

    preview = operator_client.post(CHANGELIST, action("replay_runs", [orphan]))
    response = operator_client.post(
        CHANGELIST, action("replay_runs", [orphan], confirm="yes"), follow=True
    )

    assert "Not allowed: Unknown workflow &#x27;gone.workflow&#x27;" in preview.content.decode()
    [(level, text)] = messages_of(response)
    assert level == "warning"
    assert str(orphan.pk)[:8] in text and "was not replayed" in text and "gone.workflow" in text
    assert WorkflowRun.objects.count() == 1


def test_actions__malformed_run_ids_are_refused_without_changes(operator_client):
    waiting = pending_run()

    response = operator_client.post(
        CHANGELIST,
        {
            "action": "cancel_runs",
            "_selected_action": [str(waiting.pk), "1; DROP"],
            "confirm": "yes",
        },
        follow=True,
    )

    assert response.status_code == 200
    [(level, text)] = messages_of(response)
    assert level == "error" and "Not a run id: '1; DROP'" in text
    waiting.refresh_from_db()
    assert waiting.status == "pending"


def test_actions__too_many_runs_are_refused_without_changes(operator_client, monkeypatch):
    monkeypatch.setattr("squidmesh.admin.run_actions.MAX_RUNS_PER_ACTION", 2)
    runs = [pending_run(f"r{n}") for n in range(3)]

    response = operator_client.post(
        CHANGELIST,
        {
            "action": "cancel_runs",
            "select_across": "1",
            "index": "0",
            "_selected_action": [str(runs[0].pk)],
            "confirm": "yes",
        },
        follow=True,
    )

    [(level, text)] = messages_of(response)
    assert level == "error" and "at most 2 runs" in text
    assert WorkflowRun.objects.filter(status="pending").count() == 3


def test_actions__unknown_action_name_changes_nothing(operator_client):
    waiting = pending_run()

    response = operator_client.post(
        CHANGELIST, action("delete_selected", [waiting], post="yes"), follow=True
    )

    assert ("warning", "No action selected.") in messages_of(response)
    assert WorkflowRun.objects.filter(pk=waiting.pk, status="pending").exists()


def test_actions__viewer_is_not_offered_them_and_cannot_post_them(viewer_client):
    waiting = pending_run()

    listing = viewer_client.get(CHANGELIST).content.decode()
    response = viewer_client.post(
        CHANGELIST, action("cancel_runs", [waiting], confirm="yes"), follow=True
    )

    assert 'name="action"' not in listing
    # Without any permitted action the POST is just the list again.
    assert response.status_code == 200 and messages_of(response) == []
    waiting.refresh_from_db()
    assert waiting.status == "pending"


def test_actions__cancel_permission_does_not_grant_replay(django_user_model):
    from tests.admin.conftest import client_for, make_staff

    client = client_for(
        make_staff(django_user_model, "canceller", "view_workflowrun", "cancel_workflowrun")
    )
    done = completed_run()

    listing = client.get(CHANGELIST).content.decode()

    assert 'value="cancel_runs"' in listing
    assert 'value="replay_runs"' not in listing
    assert client.get(replay_url(done)).status_code == 403
    assert client.post(replay_url(done), {"confirm": "yes"}).status_code == 403
    assert WorkflowRun.objects.count() == 1


def test_single_cancel__confirmation_then_cancel_and_back_to_the_run(operator_client):
    waiting = pending_run()

    page = operator_client.get(cancel_url(waiting))
    response = operator_client.post(cancel_url(waiting), {"confirm": "yes"})

    assert page.status_code == 200 and "Yes, cancel" in page.content.decode()
    assert response.status_code == 302 and response["Location"] == detail_url(waiting)
    waiting.refresh_from_db()
    assert waiting.status == "cancelled"


def test_single_cancel__post_without_confirmation_only_shows_the_page(operator_client):
    waiting = pending_run()

    response = operator_client.post(cancel_url(waiting), {})

    assert response.status_code == 200
    waiting.refresh_from_db()
    assert waiting.status == "pending"


def test_single_cancel__terminal_run_gets_a_warning_and_stays_unchanged(operator_client):
    done = completed_run()

    response = operator_client.post(cancel_url(done), {"confirm": "yes"}, follow=True)

    [(level, text)] = messages_of(response)
    assert level == "warning" and "already completed" in text
    done.refresh_from_db()
    assert done.status == "completed"


def test_single_replay__redirects_to_the_new_run(operator_client):
    done = completed_run()

    response = operator_client.post(replay_url(done), {"confirm": "yes"})

    replay = WorkflowRun.objects.get(replayed_from=done)
    assert response.status_code == 302 and response["Location"] == detail_url(replay)
    assert replay.status == "pending" and replay.payload == done.payload


def test_single_operations__denied_to_viewers_and_outsiders(viewer_client, outsider_client):
    waiting = pending_run()

    for client in (viewer_client, outsider_client):
        assert client.get(cancel_url(waiting)).status_code == 403
        assert client.post(cancel_url(waiting), {"confirm": "yes"}).status_code == 403
        assert client.post(replay_url(waiting), {"confirm": "yes"}).status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == "pending"
    assert WorkflowRun.objects.count() == 1


def test_single_operations__anonymous_user_is_sent_to_login(client):
    waiting = pending_run()

    response = client.post(cancel_url(waiting), {"confirm": "yes"})

    assert response.status_code == 302 and "/login/" in response["Location"]
    waiting.refresh_from_db()
    assert waiting.status == "pending"


def test_single_operations__unknown_run_redirects_with_a_message(operator_client):
    response = operator_client.post(
        "/admin/squidmesh/workflowrun/not-a-run/cancel/", {"confirm": "yes"}, follow=True
    )

    assert response.status_code == 200
    assert "doesn\u2019t exist" in response.content.decode()


def test_detail__buttons_follow_permissions_and_state(operator_client, viewer_client):
    done = completed_run()
    waiting = pending_run()

    operator_waiting = operator_client.get(detail_url(waiting)).content.decode()
    operator_done = operator_client.get(detail_url(done)).content.decode()
    viewer_waiting = viewer_client.get(detail_url(waiting)).content.decode()

    assert cancel_url(waiting) in operator_waiting and replay_url(waiting) in operator_waiting
    assert cancel_url(done) not in operator_done and replay_url(done) in operator_done
    assert cancel_url(waiting) not in viewer_waiting and replay_url(waiting) not in viewer_waiting


def test_changelist_and_detail__denied_without_view_permission(outsider_client):
    waiting = pending_run()

    assert outsider_client.get(CHANGELIST).status_code == 403
    assert outsider_client.get(detail_url(waiting)).status_code == 403


def _link(run):
    return f'<a href="{detail_url(run)}" title="{run.pk}"><code>{str(run.pk)[:8]}</code></a>'

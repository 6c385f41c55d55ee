"""The run list: columns, badges, ordering, filters, search, and its query count."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import squidmesh
from squidmesh.admin import WorkflowRunAdmin
from squidmesh.models import WorkflowRun
from tests.admin.conftest import CHANGELIST, completed_run, failed_run, pending_run

pytestmark = pytest.mark.django_db


def listed_ids(response):
    return [str(run.pk) for run in response.context["cl"].result_list]


def test_changelist__shows_status_badges_and_run_columns(operator_client):
    done = completed_run()
    waiting = pending_run()

    response = operator_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="squidmesh-badge squidmesh-status-completed">Completed<' in html
    assert 'class="squidmesh-badge squidmesh-status-pending">Pending<' in html
    assert str(done.pk)[:8] in html and str(waiting.pk)[:8] in html
    for column in ("workflow", "trigger", "current step", "created", "updated", "duration"):
        assert f">{column.capitalize()}<" in html or column in html.lower()
    # The pending run waits at its entry step; the completed one has none.
    assert '<td class="field-current_step_name">a</td>' in html


def test_changelist__lists_newest_first(operator_client):
    older = pending_run("older")
    newer = pending_run("newer")
    WorkflowRun.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))

    response = operator_client.get(CHANGELIST)

    assert listed_ids(response) == [str(newer.pk), str(older.pk)]


def test_changelist__shows_duration_from_timestamps(operator_client):
    run = pending_run()
    started = timezone.now() - timedelta(minutes=3, seconds=5)
    WorkflowRun.objects.filter(pk=run.pk).update(
        started_at=started, finished_at=started + timedelta(seconds=125), status="completed"
    )

    html = operator_client.get(CHANGELIST).content.decode()

    assert '<td class="field-duration">2 min 05 s</td>' in html


def test_changelist__filters_by_status(operator_client):
    done = completed_run()
    waiting = pending_run()

    assert listed_ids(operator_client.get(CHANGELIST, {"status__exact": "completed"})) == [
        str(done.pk)
    ]
    assert listed_ids(operator_client.get(CHANGELIST, {"status__exact": "pending"})) == [
        str(waiting.pk)
    ]


def test_changelist__filters_by_workflow_from_the_registry(operator_client):
    failed = failed_run()
    pending_run()

    response = operator_client.get(CHANGELIST, {"workflow": "tests.flaky"})

    assert listed_ids(response) == [str(failed.pk)]
    choices = [title for title, _ in _filter_choices(response, "workflow")]
    assert choices[0] == "All"
    assert set(choices[1:]) == set(squidmesh.registry.names())


def test_changelist__filters_by_a_workflow_no_longer_registered(operator_client):
    orphan = WorkflowRun.objects.create(workflow="gone.workflow", trigger="manual", status="failed")
    pending_run()

    response = operator_client.get(CHANGELIST, {"workflow": "gone.workflow"})

    assert listed_ids(response) == [str(orphan.pk)]
    assert "gone.workflow (not registered)" in [t for t, _ in _filter_choices(response, "workflow")]


def test_changelist__filters_by_trigger_and_narrows_trigger_choices_to_the_workflow(
    operator_client,
):
    backoffice = squidmesh.start_run(
        "shop.order_fulfilment", {"order_ref": "B-1", "amount_cents": 5}, trigger="backoffice"
    )
    squidmesh.start_run("shop.order_fulfilment", {"order_ref": "C-1", "amount_cents": 5})

    response = operator_client.get(CHANGELIST, {"trigger": "backoffice"})
    assert listed_ids(response) == [str(backoffice.pk)]

    narrowed = operator_client.get(CHANGELIST, {"workflow": "shop.daily_report"})
    triggers = [title for title, _ in _filter_choices(narrowed, "trigger")]
    assert triggers == ["All", "nightly", "on_demand"]


def test_changelist__filters_by_creation_date(operator_client):
    recent = pending_run("recent")
    old = pending_run("old")
    WorkflowRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    choices = dict(_filter_choices(operator_client.get(CHANGELIST), "created_at"))

    response = operator_client.get(CHANGELIST + choices["Past 7 days"])

    assert listed_ids(response) == [str(recent.pk)]


def test_changelist__bad_filter_value_redirects_instead_of_failing(operator_client):
    pending_run()

    response = operator_client.get(CHANGELIST, {"created_at__gte": "not-a-date"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_changelist__page_out_of_range_redirects_instead_of_failing(operator_client, monkeypatch):
    monkeypatch.setattr(WorkflowRunAdmin, "list_per_page", 2)
    for number in range(3):
        pending_run(f"run-{number}")

    response = operator_client.get(CHANGELIST, {"p": "999"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_search__full_run_id_matches_exactly(operator_client):
    wanted = pending_run()
    pending_run()

    assert listed_ids(operator_client.get(CHANGELIST, {"q": str(wanted.pk)})) == [str(wanted.pk)]


def test_search__run_id_prefix_as_shown_in_the_list_matches_through_the_primary_key(
    operator_client,
):
    wanted = pending_run()
    pending_run()

    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(CHANGELIST, {"q": str(wanted.pk)[:13]})

    assert listed_ids(response) == [str(wanted.pk)]
    # A range on the primary key, not a LIKE over every row.
    assert not [q["sql"] for q in queries.captured_queries if "LIKE" in q["sql"]]


def test_search__hex_word_that_starts_no_run_id_is_searched_in_payloads(operator_client):
    wanted = pending_run("deadbeef99")
    pending_run("other")

    assert listed_ids(operator_client.get(CHANGELIST, {"q": "deadbeef99"})) == [str(wanted.pk)]


def test_search__run_id_written_in_a_payload_finds_the_run_that_mentions_it(operator_client):
    mentioned = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    wanted = pending_run(f"about {mentioned}")

    assert listed_ids(operator_client.get(CHANGELIST, {"q": mentioned})) == [str(wanted.pk)]


def test_search__payload_value_matches_case_insensitively(operator_client):
    wanted = pending_run("Needle-4711")
    pending_run("hay")

    assert listed_ids(operator_client.get(CHANGELIST, {"q": "needle-4711"})) == [str(wanted.pk)]
    assert listed_ids(operator_client.get(CHANGELIST, {"q": '"Needle-4711"'})) == [str(wanted.pk)]


def test_search__every_word_must_match(operator_client):
    both = squidmesh.start_run(
        "shop.order_fulfilment", {"order_ref": "REF-77", "amount_cents": 31337}
    )
    squidmesh.start_run("shop.order_fulfilment", {"order_ref": "REF-77", "amount_cents": 1})

    assert listed_ids(operator_client.get(CHANGELIST, {"q": "REF-77 31337"})) == [str(both.pk)]


def test_search__no_match_shows_an_empty_list(operator_client):
    pending_run()

    response = operator_client.get(CHANGELIST, {"q": "nothing-like-this"})

    assert response.status_code == 200
    assert listed_ids(response) == []


def test_changelist__query_count_does_not_grow_with_the_runs_listed(operator_client):
    for number in range(5):
        pending_run(f"run-{number}")
    with CaptureQueriesContext(connection) as five:
        assert operator_client.get(CHANGELIST).status_code == 200
    for number in range(45):
        pending_run(f"more-{number}")
    with CaptureQueriesContext(connection) as fifty:
        response = operator_client.get(CHANGELIST)

    assert len(response.context["cl"].result_list) == 50
    assert len(fifty) == len(five), [q["sql"] for q in fifty.captured_queries]


def test_changelist__does_not_load_payload_or_context_for_the_list(operator_client):
    pending_run()

    with CaptureQueriesContext(connection) as queries:
        operator_client.get(CHANGELIST)

    listing = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"]]
    assert listing, "the list query was not captured"
    assert all('"payload"' not in sql and '"context"' not in sql for sql in listing)


def test_changelist__is_read_only(operator_client):
    pending_run()

    html = operator_client.get(CHANGELIST).content.decode()

    assert "addlink" not in html
    assert 'value="delete_selected"' not in html


def _filter_choices(response, parameter):
    for spec in response.context["cl"].filter_specs:
        if parameter in (getattr(spec, "parameter_name", None), getattr(spec, "field_path", None)):
            return [
                (str(choice["display"]), choice["query_string"])
                for choice in spec.choices(response.context["cl"])
            ]
    raise AssertionError(f"no filter {parameter}")


def test_action_checkbox__same_markup_as_djangos_widget():
    from django.contrib import admin as django_admin
    from django.contrib.admin import ModelAdmin

    run = pending_run("markup")
    model_admin = django_admin.site._registry[WorkflowRun]

    assert model_admin.action_checkbox(run) == ModelAdmin.action_checkbox(model_admin, run)


@pytest.mark.django_db(transaction=True)
def test_changelist__shows_the_outbox_relays_lag_on_a_non_transactional_broker(
    operator_client, redis_broker
):
    from squidmesh.models import OutboxMessage

    squidmesh.start_run("tests.three_steps", {})
    OutboxMessage.objects.update(due_at=timezone.now() - timedelta(seconds=4))

    html = operator_client.get(CHANGELIST).content.decode()

    assert "Outbox relay: 1 dispatch waiting (1 due), lag 4." in html
    assert 'class="squidmesh-outbox squidmesh-note"' in html


def test_changelist__no_outbox_line_on_the_orm_broker(operator_client):
    assert "Outbox relay" not in operator_client.get(CHANGELIST).content.decode()


@pytest.mark.parametrize(
    "query",
    [
        "workflow=%00",
        "trigger=%00",
        "workflow=shop.daily_report&trigger=night%00ly",
        "status__exact=%00",
        "created_at__gte=%00",
        "created_at__lt=2020-01-01%00",
        "q=%00",
        "q=A-1001+%00",
        "o=%00",
        "p=%00",
        "replayed_from__id__exact=%00",
        "%00=1",
    ],
)
def test_changelist__nul_in_any_parameter_redirects_with_a_message(operator_client, query):
    pending_run()

    response = operator_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    followed = operator_client.get(response["Location"])
    assert followed.status_code == 200
    texts = [str(message) for message in followed.context["messages"]]
    assert any("NUL character" in text for text in texts), texts
    assert len(listed_ids(followed)) == 1  # the unfiltered list


@pytest.mark.parametrize(
    "query",
    [
        "workflow=" + "x" * 5000,
        "trigger=" + "x" * 5000,
        "status__exact=no-such-status",
        "q=%ED%A0%80",  # a lone surrogate, UTF-8 encoded
        "q=%FF%FE",
        "workflow=%FF",
    ],
    ids=lambda query: query[:30],
)
def test_changelist__values_that_match_no_run_show_an_empty_list(operator_client, query):
    pending_run()

    response = operator_client.get(f"{CHANGELIST}?{query}")

    assert response.status_code == 200
    assert listed_ids(response) == []


@pytest.mark.parametrize(
    "query", ["replayed_from__id__exact=not-a-uuid", "o=99.-3.abc", "p=-1", "p=abc"]
)
def test_changelist__malformed_lookup_order_or_page_never_fails(operator_client, query):
    pending_run()

    response = operator_client.get(f"{CHANGELIST}?{query}", follow=True)

    assert response.status_code == 200


def test_changelist__last_error_column_shows_type_and_start_of_message(operator_client):
    failed = failed_run()
    long = pending_run("long error")
    WorkflowRun.objects.filter(pk=long.pk).update(
        last_error={"type": "StepFailure", "message": "x" * 5000, "details": {"tb": "y" * 9000}}
    )
    quiet = pending_run("no error")

    response = operator_client.get(CHANGELIST)

    html = response.content.decode()
    rows = {str(run.pk): run for run in response.context["cl"].result_list}
    assert rows[str(long.pk)].last_error_message == "x" * 300
    assert "x" * 301 not in html and "y" * 10 not in html
    assert f'title="StepFailure: {"x" * 300}">{"x" * 300}</span>' in html
    cells = re.findall(r'<td class="field-last_error_summary">(.*?)</td>', html)
    assert len(cells) == 3
    assert any("TerminalFailure" in cell or "StepFailure" in cell for cell in cells)
    assert rows[str(quiet.pk)].last_error_message is None
    assert str(failed.pk) in rows

import io
import json
import os
import subprocess
import sys
import uuid

import pytest
from django.core.management import CommandError, call_command

import squidmesh
from squidmesh.models import WorkflowRun
from squidmesh.registry import registry
from squidmesh.serialization import run_detail
from squidmesh.testing import drain
from tests.conftest import ROOT


def squidmesh_command(*args):
    """Run `manage.py squidmesh ARGS` in this process; return (stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("squidmesh", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def refused(*args, returncode=1):
    """Run the command expecting a refusal; return its message."""
    with pytest.raises(CommandError) as error:
        squidmesh_command(*args)
    assert error.value.returncode == returncode
    return str(error.value)


def table(text):
    """Split a text table into rows of cells (columns are separated by 2+ spaces)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


# -- workflows / describe -------------------------------------------------------


def test_workflows__aligned_table_of_registered_workflows():
    out, _ = squidmesh_command("workflows")

    lines = out.strip().splitlines()
    assert lines[0].split() == ["NAME", "TRIGGERS", "STEPS", "DESCRIPTION"]
    assert [row[0] for row in table(out)[1:]] == registry.names()
    # Aligned: every row's second column starts where the header's does.
    column = lines[0].index("TRIGGERS")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines[1:])
    fulfilment = table(out)[1 + registry.names().index("shop.order_fulfilment")]
    assert fulfilment[:3] == ["shop.order_fulfilment", "checkout, backoffice", "6"]


def test_workflows__json_is_a_list_of_summaries():
    out, _ = squidmesh_command("workflows", "--json")

    data = json.loads(out)
    assert [workflow["name"] for workflow in data] == registry.names()
    assert set(data[0]) == {"name", "description", "entry_step", "triggers", "steps"}


def test_describe__text_shows_triggers_fields_and_steps():
    out, _ = squidmesh_command("describe", "shop.order_fulfilment")

    assert out.startswith("shop.order_fulfilment — Reserve stock")
    assert "Trigger checkout (manual, default)" in out
    assert "Trigger backoffice (manual)" in out
    rows = table(out)
    assert ["order_ref", "string", "yes", "-", "-"] in rows
    charge = next(row for row in rows if row[0] == "charge_card")
    assert charge[:6] == [
        "charge_card",
        "task",
        "ship",
        "refund_and_notify",
        "3 attempts, 0.5-4s jitter",
        "10s",
    ]


def test_describe__cron_trigger_shows_expression_and_zone():
    out, _ = squidmesh_command("describe", "shop.daily_report")
    assert "Trigger nightly (cron '0 6 * * *' Europe/Paris)" in out


def test_describe__json_is_the_definition():
    out, _ = squidmesh_command("describe", "tests.three_steps", "--json")
    assert json.loads(out) == registry.get("tests.three_steps").describe()


def test_describe__unknown_workflow_lists_the_registered_ones():
    message = refused("describe", "nope")
    assert "Unknown workflow 'nope'" in message
    assert "shop.order_fulfilment" in message


# -- start ---------------------------------------------------------------------


@pytest.mark.django_db
def test_start__key_value_fields_are_json_when_they_parse():
    out, _ = squidmesh_command(
        "start",
        "shop.order_fulfilment",
        "--trigger",
        "backoffice",
        "order_ref=00042",
        "amount_cents=4200",
        'operator="7"',
        "tags=[1, 2]",
        "metadata={}",
    )

    run = WorkflowRun.objects.get()
    assert out.strip() == (
        f"Started run {run.pk} of shop.order_fulfilment (trigger backoffice): pending"
    )
    assert run.payload == {
        "order_ref": "00042",  # not JSON (leading zero): kept as a string
        "amount_cents": 4200,
        "operator": "7",
        "tags": [1, 2],
        "metadata": {},
        "card": "ok",
        "declines": 0,
    }


@pytest.mark.django_db
def test_start__payload_json_with_fields_overriding_it():
    out, _ = squidmesh_command(
        "start",
        "tests.three_steps",
        "--payload",
        '{"label": "from json"}',
        "label=from field",
        "--json",
    )

    data = json.loads(out)
    run = squidmesh.inspect_run(data["id"])
    assert run.payload == {"label": "from field"}
    assert data == run_detail(run)


@pytest.mark.django_db
def test_start__same_idempotency_key_reports_the_existing_run():
    first, _ = squidmesh_command("start", "tests.three_steps", "--idempotency-key", "k", "--json")
    again, _ = squidmesh_command("start", "tests.three_steps", "--idempotency-key", "k")

    run_id = json.loads(first)["id"]
    assert again.startswith(f"Idempotency key 'k' matched run {run_id} of tests.three_steps")
    assert WorkflowRun.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "Unknown workflow 'nope'"),
        (["tests.three_steps", "--trigger", "cron"], "has no trigger 'cron'"),
        (["tests.three_steps", "label=3"], "Invalid payload:\n  label: must be a string"),
        (["tests.three_steps", "colour=red"], "colour: is not a declared payload field"),
        (["shop.order_fulfilment", "order_ref=A"], "amount_cents: this field is required"),
    ],
)
def test_start__refused_input_exits_1_with_the_reason_and_stores_nothing(args, message):
    assert message in refused("start", *args)
    assert not WorkflowRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tests.three_steps", "--payload", "{label"], "argument --payload: not valid JSON"),
        (["tests.three_steps", "--payload", "[1]"], "argument --payload: must be a JSON object"),
        (["tests.three_steps", "label"], "expected FIELD=VALUE, got 'label'"),
        (["tests.three_steps", "=x"], "expected FIELD=VALUE, got '=x'"),
        (["tests.three_steps", "--timeout", "soon"], "argument --timeout: expected a positive"),
        (["tests.three_steps", "--timeout", "-1"], "argument --timeout: expected a positive"),
        (["tests.three_steps", "--timeout", "nan"], "argument --timeout: expected a positive"),
        ([], "the following arguments are required: WORKFLOW"),
    ],
)
def test_start__malformed_arguments_are_usage_errors(args, message):
    assert message in refused("start", *args)
    assert not WorkflowRun.objects.exists()


# -- runs ----------------------------------------------------------------------


@pytest.mark.django_db
def test_runs__table_newest_first():
    older = squidmesh.start_run("tests.three_steps", {})
    newer = squidmesh.start_run("shop.daily_report", {}, trigger="on_demand")

    out, _ = squidmesh_command("runs")

    rows = table(out)
    assert rows[0] == ["ID", "WORKFLOW", "TRIGGER", "STATUS", "STEP", "CREATED"]
    assert [row[:5] for row in rows[1:]] == [
        [str(newer.pk), "shop.daily_report", "on_demand", "pending", "compile_report"],
        [str(older.pk), "tests.three_steps", "manual", "pending", "a"],
    ]


@pytest.mark.django_db
def test_runs__no_runs():
    assert squidmesh_command("runs")[0].strip() == "No runs."


@pytest.mark.django_db
def test_runs__filters_and_limit_with_json():
    runs = [squidmesh.start_run("tests.three_steps", {}) for _ in range(3)]
    squidmesh.cancel_run(runs[1].pk)
    squidmesh.start_run("shop.daily_report", {}, trigger="on_demand")

    def listed(*args):
        return [run["id"] for run in json.loads(squidmesh_command("runs", "--json", *args)[0])]

    assert listed("--workflow", "tests.three_steps", "--limit", "2") == [
        str(runs[2].pk),
        str(runs[1].pk),
    ]
    assert listed("--status", "cancelled") == [str(runs[1].pk)]
    assert len(listed("--trigger", "on_demand")) == 1
    after = runs[1].created_at.isoformat()
    before = runs[2].created_at.isoformat()
    assert listed("--created-after", after, "--created-before", before) == [str(runs[1].pk)]
    assert listed("--created-after", "2999-01-01") == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "bogus"], "argument --status: invalid choice: 'bogus'"),
        (["--limit", "many"], "argument --limit: expected an integer from 1 to 1000, got 'many'"),
        (["--created-after", "last week"], "'last week' is not an ISO-8601 date or datetime"),
        (["--limit", "0"], "argument --limit: expected an integer from 1 to 1000, got '0'"),
        (["--limit", "1001"], "argument --limit: expected an integer from 1 to 1000"),
    ],
)
def test_runs__bad_filters_exit_non_zero_with_a_message(args, message):
    assert message in refused("runs", *args)


# -- inspect -------------------------------------------------------------------


@pytest.mark.django_db
def test_inspect__text_shows_the_run_and_each_attempt():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain(include_delayed=True)

    out, _ = squidmesh_command("inspect", str(run.pk))

    assert f"Run              {run.pk}" in out
    assert "Status           completed" in out
    rows = table(out.split("History", 1)[1])
    assert rows[0] == ["#", "STEP", "STATUS", "ATTEMPT", "RESULT", "STARTED", "TOOK", "ERROR"]
    assert rows[1][:5] == ["1", "flaky", "completed", "1", "failed"]
    assert rows[1][-1] == "flaky failure 1"
    assert rows[2][:2] == ["2", "succeeded"]


@pytest.mark.django_db
def test_inspect__pending_run_has_no_history_yet():
    run = squidmesh.start_run("tests.three_steps", {})
    out, _ = squidmesh_command("inspect", str(run.pk))
    assert "(no step has run yet)" in out


@pytest.mark.django_db
def test_inspect__json_is_the_detail_with_history():
    run = squidmesh.start_run("tests.three_steps", {})
    drain()

    out, _ = squidmesh_command("inspect", str(run.pk), "--json")

    expected = run_detail(squidmesh.inspect_run(run.pk, include_history=True), include_history=True)
    assert json.loads(out) == expected
    assert [step["step"] for step in expected["history"]] == ["a", "b", "c"]


@pytest.mark.django_db
@pytest.mark.parametrize("run_id", [str(uuid.uuid4()), "not-a-run"])
def test_inspect__unknown_run_exits_1(run_id):
    assert refused("inspect", run_id) == f"Run {run_id} not found."


# -- cancel / replay -----------------------------------------------------------


@pytest.mark.django_db
def test_cancel__pending_run_is_cancelled():
    run = squidmesh.start_run("tests.three_steps", {})

    out, _ = squidmesh_command("cancel", str(run.pk))

    assert out.strip() == f"Run {run.pk} is cancelled."
    assert squidmesh.inspect_run(run.pk).status == "cancelled"


@pytest.mark.django_db
def test_cancel__json():
    run = squidmesh.start_run("tests.three_steps", {})
    out, _ = squidmesh_command("cancel", str(run.pk), "--json")
    assert json.loads(out)["status"] == "cancelled"


@pytest.mark.django_db
def test_cancel__finished_run_exits_1_with_the_reason():
    run = squidmesh.start_run("tests.three_steps", {})
    drain()

    message = refused("cancel", str(run.pk))

    assert message == f"Run {run.pk} is already completed and cannot be cancelled."


@pytest.mark.django_db
def test_cancel__unknown_run_exits_1():
    assert "not found" in refused("cancel", str(uuid.uuid4()))


@pytest.mark.django_db
def test_replay__starts_a_linked_run():
    source = squidmesh.start_run("tests.three_steps", {"label": "r"})

    out, _ = squidmesh_command("replay", str(source.pk), "--json")

    data = json.loads(out)
    assert data["replayed_from"] == str(source.pk)
    assert data["payload"] == {"label": "r"}
    text, _ = squidmesh_command("replay", str(source.pk))
    assert text.startswith("Started run ") and f"replaying {source.pk}: pending" in text
    assert WorkflowRun.objects.count() == 3


@pytest.mark.django_db
def test_replay__unknown_run_exits_1():
    assert "not found" in refused("replay", "nope")


# -- --wait --------------------------------------------------------------------


@pytest.mark.django_db
def test_wait__times_out_with_exit_4_and_shows_progress(monkeypatch):
    from squidmesh.management.subcommands import waiting

    monkeypatch.setattr(waiting, "QUIET_SECONDS", 0.2)
    stdout, stderr = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command(
            "squidmesh",
            "start",
            "tests.three_steps",
            "--wait",
            "--timeout",
            "0.7",
            stdout=stdout,
            stderr=stderr,
        )

    assert error.value.returncode == 4
    assert "still pending (step a) after 0.7s" in str(error.value)
    assert "run is pending" in stderr.getvalue()
    assert "still pending at step a" in stderr.getvalue()
    assert "Status           pending" in stdout.getvalue()


@pytest.mark.django_db
def test_wait__ctrl_c_stops_waiting_with_exit_130_and_leaves_the_run(monkeypatch):
    from squidmesh.management.subcommands import waiting

    def interrupt(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(waiting.time, "sleep", interrupt)

    message = refused("start", "tests.three_steps", "--wait", returncode=130)

    run = WorkflowRun.objects.get()
    assert message == f"Stopped waiting; run {run.pk} goes on without this command."
    assert run.status == "pending"


@pytest.mark.cluster
def test_wait__follows_a_run_through_a_real_cluster(cluster):
    stdout, stderr = io.StringIO(), io.StringIO()

    call_command(
        "squidmesh",
        "start",
        "tests.flaky",
        "fail_times=1",
        "--wait",
        "--timeout",
        "60",
        "--json",
        stdout=stdout,
        stderr=stderr,
    )

    data = json.loads(stdout.getvalue())
    assert data["status"] == "completed"
    assert [a["status"] for a in data["history"][0]["attempts"]] == ["failed", "succeeded"]
    progress = stderr.getvalue()
    for line in [
        f"Started run {data['id']} of tests.flaky",
        "flaky attempt 1: failed",
        "flaky failure 1",
        "run is retrying",
        "flaky attempt 2: succeeded",
        "run is completed",
    ]:
        assert line in progress


@pytest.mark.cluster
def test_wait__failed_run_exits_3(cluster):
    stdout, stderr = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command(
            "squidmesh",
            "start",
            "tests.flaky",
            "fail_times=1",
            "terminal=true",
            "--wait",
            stdout=stdout,
            stderr=stderr,
        )

    assert error.value.returncode == 3
    assert str(error.value).endswith("failed: gave up")
    assert "Status           failed" in stdout.getvalue()
    assert "flaky attempt 1: failed" in stderr.getvalue()


# -- a real process: exit statuses and no tracebacks -----------------------------


def command_line(*args: str) -> subprocess.CompletedProcess[str]:
    """Run `python -m django squidmesh ARGS` in a fresh process, as a shell user would."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "squidmesh", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # a real subprocess: not in the fast tier
@pytest.mark.parametrize(
    ("args", "returncode", "message"),
    [
        (["start", "nope"], 1, "CommandError: Unknown workflow 'nope'"),
        (["runs", "--status", "bogus"], 2, "argument --status: invalid choice"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ],
)
def test_command_line__exit_status_and_message_without_traceback(args, returncode, message):
    result = command_line(*args)

    assert result.returncode == returncode
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("--payload=" + "[" * 100_000 + "]" * 100_000, "nested too deeply to decode"),
        ("label=" + "[" * 100_000 + "]" * 100_000, "label: nested too deeply to decode"),
    ],
)
@pytest.mark.django_db
def test_start__json_nested_too_deeply_to_decode_is_a_usage_error(argument, message):
    with pytest.raises(CommandError) as error:
        squidmesh_command("start", "tests.three_steps", argument)
    # An argparse error: exit status 2 from the command line.
    assert message in str(error.value)
    assert not WorkflowRun.objects.exists()

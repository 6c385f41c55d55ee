"""`manage.py squidmesh` hardening: audit options, id prefixes, range checks, escaped output."""

import json
import uuid

import pytest

import squidmesh
from squidmesh.audit import cli_actor
from squidmesh.models import RunEvent, WorkflowRun
from squidmesh.testing import drain
from tests.management.test_commands import command_line, refused, squidmesh_command, table

pytestmark = pytest.mark.django_db


def make_run(run_id, **fields):
    return WorkflowRun.objects.create(
        id=uuid.UUID(run_id), workflow="tests.three_steps", trigger="manual", **fields
    )


def events_of(run):
    return [(e.kind, e.actor, e.source, e.reason) for e in RunEvent.objects.filter(run=run)]


# -- audit: actor, source and --reason -------------------------------------------


def test_start__records_the_os_user_from_the_cli_with_the_reason():
    squidmesh_command("start", "tests.three_steps", "--reason", "backfill")

    run = WorkflowRun.objects.get()
    assert events_of(run) == [("started", cli_actor(), "cli", "backfill")]


def test_cancel_and_replay__record_the_reason():
    source = squidmesh.start_run("tests.three_steps", {})
    squidmesh_command("replay", str(source.pk), "--reason", "retry after fix")
    squidmesh_command("cancel", str(source.pk), "--reason", "stop it")

    assert events_of(source)[1:] == [
        ("replayed", cli_actor(), "cli", "retry after fix"),
        ("cancelled", cli_actor(), "cli", "stop it"),
    ]


def test_inspect__text_lists_the_events():
    run = squidmesh.start_run("tests.three_steps", {}, actor="alice", reason="first try")

    out, _ = squidmesh_command("inspect", str(run.pk))

    rows = table(out.split("Events", 1)[1])
    assert rows[0] == ["WHEN", "EVENT", "ACTOR", "SOURCE", "REASON", "DATA"]
    assert rows[1][1:] == ["started", "alice", "api", "first try", "-"]


def test_inspect__json_has_the_events():
    run = squidmesh.start_run("tests.three_steps", {}, actor="alice")

    out, _ = squidmesh_command("inspect", str(run.pk), "--json")

    assert [(e["kind"], e["actor"], e["source"]) for e in json.loads(out)["events"]] == [
        ("started", "alice", "api")
    ]


# -- replay --idempotency-key ------------------------------------------------------


def test_replay__same_idempotency_key_twice_starts_one_run():
    source = squidmesh.start_run("tests.three_steps", {})

    first, _ = squidmesh_command("replay", str(source.pk), "--idempotency-key", "k1")
    second, _ = squidmesh_command("replay", str(source.pk), "--idempotency-key", "k1")

    replay = WorkflowRun.objects.get(replayed_from=source)
    assert first.startswith(f"Started run {replay.pk} replaying {source.pk}")
    assert second.startswith(f"Idempotency key 'k1' matched run {replay.pk}")


# -- run id prefixes ---------------------------------------------------------------


def test_inspect__unique_prefix_of_8_characters_finds_the_run():
    run = make_run("2c10a382-1111-4111-8111-111111111111")
    make_run("2c10a383-1111-4111-8111-111111111111")

    out, _ = squidmesh_command("inspect", "2c10a382")

    assert f"Run              {run.pk}" in out


def test_inspect__ambiguous_prefix_exits_1_listing_the_candidates():
    one = make_run("2c10a382-1111-4111-8111-111111111111")
    two = make_run("2c10a382-2222-4222-8222-222222222222")

    message = refused("inspect", "2C10A382")

    assert "matches several runs" in message
    assert str(one.pk) in message and str(two.pk) in message
    # A longer prefix settles it.
    out, _ = squidmesh_command("inspect", "2c10a382-2")
    assert str(two.pk) in out


@pytest.mark.parametrize("text", ["2c10a382", "2c10a3", "not-a-run"])
def test_inspect__prefix_without_a_match_is_not_found(text):
    make_run("ffffffff-1111-4111-8111-111111111111")
    assert refused("inspect", text) == f"Run {text} not found."


def test_cancel_and_replay__accept_a_unique_prefix():
    source = squidmesh.start_run("tests.three_steps", {})
    drain()
    prefix = str(source.pk)[:8]

    out, _ = squidmesh_command("replay", prefix)
    replay = WorkflowRun.objects.get(replayed_from=source)
    assert out.startswith(f"Started run {replay.pk}")
    out, _ = squidmesh_command("cancel", str(replay.pk)[:10])
    assert out == f"Run {replay.pk} is cancelled.\n"


# -- filters validated like REST -----------------------------------------------------


def test_runs__bounds_in_the_wrong_order_are_refused_like_rest():
    message = refused("runs", "--created-after", "2030-01-01", "--created-before", "2020-01-01")
    assert message == "created_before must be later than created_after"


# -- range checks: usage errors, never a traceback -------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prune", "--older-than", "2592000", "--dry-run"], "up to 36,500"),
        (["prune", "--older-than", "1e308"], "up to 36,500"),
        (["prune", "--older-than", "inf"], "expected a positive number of days"),
        (["recover", "--older-than", "999999999999"], "up to 3,153,600,000"),
        (["recover", "--limit", "99999999999999999999999"], "from 1 to 100000"),
        (["runs", "--limit", "99999999999999999999999"], "from 1 to 1000"),
        (["start", "tests.three_steps", "--wait", "--timeout", "1e308"], "up to 3,153,600,000"),
        (["runs", "--created-after", "0001-01-01T00:00+01:00"], "out of the range of dates"),
        (["runs", "--created-before", "9999-12-31T23:59-01:00"], "out of the range of dates"),
    ],
)
def test_numeric_and_date_arguments_are_range_checked(args, message):
    assert message in refused(*args)
    assert not WorkflowRun.objects.exists()


def test_largest_accepted_durations_work():
    squidmesh_command("prune", "--older-than", "36500", "--dry-run")
    squidmesh_command("recover", "--older-than", "3153600000", "--dry-run")


@pytest.mark.slow  # a real subprocess: not in the fast tier
@pytest.mark.parametrize(
    "args",
    [
        ["prune", "--older-than", "2592000", "--dry-run"],
        ["prune", "--older-than", "1e308"],
        ["recover", "--older-than", "999999999999"],
    ],
)
def test_command_line__out_of_range_exits_2_with_one_line_and_no_traceback(args):
    result = command_line(*args)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "OverflowError" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "error: argument --older-than: expected a positive number" in lines[0]


# -- control characters are escaped -------------------------------------------------------


def test_start__escape_sequences_in_the_idempotency_key_are_escaped():
    key = "\x1b[2J\x1b]0;owned\x07"
    squidmesh.start_run("tests.three_steps", {}, idempotency_key=key)

    out, _ = squidmesh_command("start", "tests.three_steps", "--idempotency-key", key)

    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[2J\\x1b]0;owned\\x07" in out


def test_inspect__control_characters_in_user_strings_are_escaped():
    run = squidmesh.start_run(
        "tests.three_steps",
        {"label": "\x1b[31mred\u202e"},
        idempotency_key="key\r\nFake: line",
        reason="why\x1b[1m",
    )
    WorkflowRun.objects.filter(pk=run.pk).update(
        last_error={"type": "X", "message": "boom\x1b[5m\x9b"}
    )

    out, _ = squidmesh_command("inspect", str(run.pk))

    assert not any(char in out for char in "\x1b\x9b\r\u202e")
    assert "Idempotency key  key\\x0d\\x0aFake: line" in out
    assert "boom\\x1b[5m\\x9b" in out
    assert "why\\x1b[1m" in out
    assert "\\u001b[31mred\\u202e" in out  # the payload, as JSON


def test_refusal_messages_escape_control_characters():
    with pytest.raises(Exception) as error:
        squidmesh_command("inspect", "\x1b[31m")
    # The message itself keeps the text; the stream that prints it escapes it.
    from io import StringIO

    from squidmesh.management.commands.squidmesh import Command

    stream = StringIO()
    command = Command(stderr=stream)
    command.stderr.write(str(error.value))
    assert "\x1b" not in stream.getvalue() and "\\x1b[31m" in stream.getvalue()


@pytest.mark.parametrize("runs", ["-1", "101", "99999999999999999999", "x"])
def test_cron_list__runs_is_range_checked(runs):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--runs: expected an integer from 0 to 100"):
        call_command("squidmesh_cron", "list", "--runs", runs)

"""The state layer: the one claim rule, run ids at the boundary, and who may write run state."""

import ast
import os
import subprocess
import sys
import uuid
from dataclasses import FrozenInstanceError
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

import squidmesh
from squidmesh.identifiers import parse_run_id
from squidmesh.lifecycle import AttemptStatus, CronState, StepStatus
from squidmesh.models import StepAttempt, StepRun
from squidmesh.runtime.executor import StepExecutor, execute_step
from squidmesh.runtime.outcome import StepOutcome, check_output
from squidmesh.state import Awaiting, awaited_attempt
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

PACKAGE = Path(squidmesh.__file__).parent
STATE_MODELS = {"WorkflowRun", "StepRun", "StepAttempt", "RunEvent", "OutboxMessage"}
WRITES = {"create", "update", "delete", "bulk_create", "bulk_update", "save", "get_or_create"}
#: Allowed outside the state layer: the statements themselves, and the dispatch's own outbox row.
WRITERS = {"querysets.py", "runtime/dispatcher.py", "testing.py"}


def claimed(step="a"):
    run = squidmesh.start_run("tests.three_steps", {})
    claim = StepExecutor(run.pk, step, 1)._claim()
    return claim


def test_awaited_attempt__a_step_never_reached_waits_for_attempt_1():
    awaited = awaited_attempt(None, None)
    assert (awaited.awaiting, awaited.number, awaited.latest) == (Awaiting.NEXT_ATTEMPT, 1, None)


def test_awaited_attempt__a_fresh_running_attempt_is_live():
    claim = claimed()
    awaited = awaited_attempt(claim.step_run, claim.step)
    assert (awaited.awaiting, awaited.number) == (Awaiting.LIVE_ATTEMPT, 1)


def test_awaited_attempt__an_attempt_past_its_timeout_is_dead():
    claim = claimed()
    StepAttempt.objects.filter(pk=claim.attempt.pk).update(
        started_at=timezone.now() - timedelta(hours=1)
    )
    awaited = awaited_attempt(StepRun.objects.get(pk=claim.step_run.pk), claim.step)
    assert (awaited.awaiting, awaited.number) == (Awaiting.DEAD_ATTEMPT, 1)


def test_awaited_attempt__after_a_failed_attempt_the_next_number_and_nothing_once_ended():
    claim = claimed()
    StepAttempt.objects.close(claim.attempt, AttemptStatus.FAILED)
    awaited = awaited_attempt(claim.step_run, claim.step)
    assert (awaited.awaiting, awaited.number) == (Awaiting.NEXT_ATTEMPT, 2)
    StepRun.objects.filter(pk=claim.step_run.pk).update(status=StepStatus.COMPLETED)
    ended = awaited_attempt(StepRun.objects.get(pk=claim.step_run.pk), claim.step)
    assert ended.awaiting is Awaiting.NOTHING


@pytest.mark.parametrize("value", [None, 42, "not-a-uuid", ""])
def test_parse_run_id__refuses_what_is_not_a_uuid(value):
    with pytest.raises(ValueError):
        parse_run_id(value)


def test_parse_run_id__accepts_a_uuid_or_its_text():
    key = uuid.uuid4()
    assert parse_run_id(key) is key
    assert parse_run_id(str(key).upper()) == key


def test_execute_step__malformed_run_id_is_skipped_not_raised():
    assert execute_step("not-a-uuid", "a", 1) == "skipped: run not found"


def test_step_executor__declares_its_context_before_any_body_runs():
    executor = StepExecutor(uuid.uuid4(), "a", 1)
    assert executor.ctx is None and executor.note is None


def test_step_outcome__is_frozen_and_built_by_the_output_check():
    outcome = check_output({"n": 1})
    assert outcome == StepOutcome(output={"n": 1}) and outcome.succeeded
    with pytest.raises(FrozenInstanceError):
        outcome.error = {}  # type: ignore[misc]
    refused = check_output(["not", "a", "mapping"])
    assert not refused.succeeded and not refused.retryable
    assert refused.error["type"] == "InvalidStepOutput"


def test_cron_states__are_text_choices_where_the_cron_module_names_them():
    from squidmesh.cron_schedules import planner as schedules

    assert schedules.ACTIVE is CronState.ACTIVE and schedules.ORPHANED is CronState.ORPHANED
    assert CronState.MISSING == "missing"


def _writes_outside_the_state_layer(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
        ):
            continue
        receiver = node.func.value
        while isinstance(receiver, ast.Call | ast.Attribute):
            receiver = receiver.func if isinstance(receiver, ast.Call) else receiver.value
        if isinstance(receiver, ast.Name) and receiver.id in STATE_MODELS:
            found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    return found


def test_only_the_state_layer_writes_run_state():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith(("state/", "migrations/")) or relative in WRITERS:
            continue
        offenders += _writes_outside_the_state_layer(path)
    assert offenders == []


def test_the_checker_finds_a_write_chain():
    # Guards the test above against passing vacuously.
    source = PACKAGE / "state" / "steps.py"
    assert _writes_outside_the_state_layer(source)


def test_ready_connects_the_runtime_receivers_without_importing_the_worker():
    """django-q2's pre_execute is connected by `AppConfig.ready()`, not by importing the executor."""
    script = (
        "import sys, django; django.setup()\n"
        "from django_q.signals import pre_execute, post_spawn\n"
        "import squidmesh.api\n"
        "assert 'squidmesh.runtime.executor' not in sys.modules, 'api imports the worker'\n"
        "uids = [entry[0][0] for entry in pre_execute.receivers]\n"
        "assert 'squidmesh.runtime.delivery' in uids, uids\n"
        "assert post_spawn.receivers\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "example_project")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

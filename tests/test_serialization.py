import json
import subprocess
import sys

import pytest
from django.test import override_settings

import squidmesh
from squidmesh.registry import registry
from squidmesh.serialization import run_detail, run_summary, workflow_summary
from squidmesh.testing import drain
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

SUMMARY_KEYS = [
    "id",
    "workflow",
    "trigger",
    "status",
    "current_step",
    "idempotency_key",
    "replayed_from",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "scheduled_for",
    "duration_seconds",
]


def test_run_summary__stable_keys_and_json_ready_values():
    run = squidmesh.start_run("tests.three_steps", {"label": "s"}, idempotency_key="key")

    summary = run_summary(run)

    assert list(summary) == SUMMARY_KEYS
    assert json.loads(json.dumps(summary)) == summary
    assert summary["id"] == str(run.pk)
    assert summary["created_at"].endswith("Z")
    assert summary["started_at"] is None


def test_run_detail__adds_payload_context_error_and_history():
    run = squidmesh.start_run("tests.three_steps", {"label": "s"})
    drain()
    replay = squidmesh.replay_run(run.pk)

    plain = run_detail(squidmesh.inspect_run(run.pk))
    full = run_detail(squidmesh.inspect_run(run.pk, include_history=True), include_history=True)

    assert list(plain) == [
        *SUMMARY_KEYS,
        "payload",
        "context",
        "last_error",
        "history",
        "events",
    ]
    assert plain["history"] is None
    assert plain["events"] is None
    assert [step["step"] for step in full["history"]] == ["a", "b", "c"]
    assert list(full["history"][0]["attempts"][0]) == [
        "number",
        "status",
        "error",
        "due_at",
        "started_at",
        "finished_at",
        "duration_seconds",
        "worker",
    ]
    assert run_summary(replay)["replayed_from"] == str(run.pk)
    assert json.loads(json.dumps(full)) == full


@override_settings(TIME_ZONE="Europe/Paris")
def test_timestamps__in_the_current_time_zone_like_drf():
    from rest_framework.fields import DateTimeField

    run = squidmesh.start_run("tests.three_steps", {})

    assert run_summary(run)["created_at"] == DateTimeField().to_representation(run.created_at)
    assert run_summary(run)["created_at"][-6:] in {"+01:00", "+02:00"}


def test_workflow_summary__names_triggers_and_steps_in_execution_order():
    assert workflow_summary(registry.get("tests.flaky_with_fallback")) == {
        "name": "tests.flaky_with_fallback",
        "description": "",
        "entry_step": "flaky",
        "triggers": ["manual"],
        "steps": ["flaky", "done", "recover"],  # along ok transitions, then the rest
    }


@pytest.mark.slow  # a real subprocess: not in the fast tier
def test_engine_and_commands_do_not_import_rest_framework():
    # The REST API is an optional extra: the engine, the shared
    # representation and the commands must work without DRF installed.
    code = """
import sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "django_q", "squidmesh"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
)
django.setup()
import squidmesh.api, squidmesh.serialization, squidmesh.management.commands.squidmesh
from django.core.management import call_command
call_command("squidmesh", "workflows", "--json")
leaked = sorted(name for name in sys.modules if name.split(".")[0] in {"rest_framework", "drf_spectacular"})
assert not leaked, leaked
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []

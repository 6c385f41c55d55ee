import contextlib
import os
import sys
from collections.abc import Iterator

import pytest
from django.core import checks
from django.test import override_settings

import squidmesh
from squidmesh import Step, UnknownWorkflow
from squidmesh.exceptions import AlreadyRegistered
from squidmesh.registry import WorkflowRegistry


def noop(data, ctx):
    return {}


def make(name, module="tests.registry_case"):
    return type(
        "Case",
        (squidmesh.Workflow,),
        {"__module__": module, "name": name, "a": Step(noop), "triggers": [squidmesh.manual()]},
    )


@contextlib.contextmanager
def module_in_testapp(name: str, source: str) -> Iterator[None]:
    """Write `source` as module `name` of the test app for the block, then remove it."""
    from django.apps import apps

    path = os.path.join(apps.get_app_config("testapp").path, f"{name}.py")
    with open(path, "w") as handle:
        handle.write(source)
    try:
        yield
    finally:
        os.remove(path)
        sys.modules.pop(f"tests.testapp.{name}", None)


def test_autodiscover__registers_workflows_of_installed_apps():
    assert {"tests.three_steps", "shop.order_fulfilment", "shop.daily_report"} <= set(
        squidmesh.registry.names()
    )


def test_register__same_name_from_another_class_raises_naming_both():
    registry = WorkflowRegistry()
    registry.register(make("dup", module="app_one.workflows"))
    with pytest.raises(AlreadyRegistered) as raised:
        registry.register(make("dup", module="app_two.workflows"))
    assert "app_one.workflows.Case" in str(raised.value)
    assert "app_two.workflows.Case" in str(raised.value)
    assert raised.value.problems[0][0] == "squidmesh.E007"


def test_get__by_name_or_class_and_unknown_raises():
    registry = WorkflowRegistry()
    workflow = squidmesh.register(make("known"), to=registry)
    assert registry.get("known") is workflow
    assert registry.get(workflow) is workflow
    with pytest.raises(UnknownWorkflow, match="'nope'"):
        registry.get("nope")
    registry.unregister("known")
    assert not registry.is_registered("known")


def test_get__class_sharing_a_name_with_the_registered_one_is_unknown():
    # Before, `get()` looked the class up by its name only, so an unregistered
    # class returned (and would have run) the registered class of that name.
    registry = WorkflowRegistry()
    registry.register(make("shared", module="app_one.workflows"))
    impostor = make("shared", module="app_two.workflows")
    with pytest.raises(UnknownWorkflow, match=r"app_two\.workflows\.Case"):
        registry.get(impostor)


def test_get__reloaded_class_of_the_same_definition_is_found():
    registry = WorkflowRegistry()
    registry.register(make("reloaded"))
    reloaded = make("reloaded")
    assert registry.get(reloaded).name == "reloaded"


def test_get__object_that_is_no_workflow_raises_unknown_workflow():
    registry = WorkflowRegistry()
    with pytest.raises(UnknownWorkflow):
        registry.get(None)  # type: ignore[arg-type]


def test_default_name__uses_app_label_and_snake_case():
    workflow = type(
        "NightlyCleanUp",
        (squidmesh.Workflow,),
        {"__module__": "shop.workflows", "a": Step(noop), "triggers": [squidmesh.manual()]},
    )
    assert workflow.name == "shop.nightly_clean_up"


def test_autodiscover__definition_error_is_kept_for_check_and_others_still_load(monkeypatch):
    source = (
        "import squidmesh\n"
        "from squidmesh import Step\n"
        "class Broken(squidmesh.Workflow):\n"
        "    name = 'tests.broken'\n"
        "    triggers = [squidmesh.manual()]\n"
        "    a = Step(print, on_ok='ghost')\n"
    )
    registry = WorkflowRegistry()
    with module_in_testapp("broken_workflows", source):
        registry.autodiscover("broken_workflows")
    assert [e.workflow for e in registry.definition_errors] == ["tests.broken"]
    monkeypatch.setattr(squidmesh.registry, "definition_errors", registry.definition_errors)
    found = checks.run_checks(tags=["squidmesh"])
    assert [(m.id, m.obj) for m in found if m.id == "squidmesh.E004"] == [
        ("squidmesh.E004", "tests.broken")
    ]
    assert "unknown step 'ghost'" in next(m.msg for m in found if m.id == "squidmesh.E004")


def test_autodiscover__other_errors_in_workflows_module_propagate(tmp_path):

    source = "raise ImportError('typo in user code')\n"
    with module_in_testapp("raising_workflows", source), pytest.raises(ImportError, match="typo"):
        WorkflowRegistry().autodiscover("raising_workflows")


def test_check__valid_project_reports_nothing():
    assert checks.run_checks(tags=["squidmesh"]) == []


def test_check__step_timeout_the_lease_cannot_cover_is_e010():
    q_cluster = {"name": "t", "orm": "default", "timeout": 5, "retry": 12}
    from django_q.conf import Conf

    original = (Conf.TIMEOUT, Conf.RETRY)
    Conf.TIMEOUT, Conf.RETRY = 5, 12
    try:
        with override_settings(Q_CLUSTER=q_cluster):
            found = checks.run_checks(tags=["squidmesh"])
    finally:
        Conf.TIMEOUT, Conf.RETRY = original
    e010 = [m for m in found if m.id == "squidmesh.E010"]
    # shop.order_fulfilment.charge_card has timeout=10 (+2 s grace) >= 12.
    assert [m.obj for m in e010] == ["shop.order_fulfilment"]
    assert "charge_card" in e010[0].msg


def test_check__settings_that_break_delivery_guarantees():
    from django_q.conf import Conf

    original = (Conf.ACK_FAILURES, Conf.MAX_ATTEMPTS, Conf.TIMEOUT)
    Conf.ACK_FAILURES, Conf.MAX_ATTEMPTS, Conf.TIMEOUT = True, 3, 20
    try:
        with override_settings(SQUIDMESH={"NOT_A_SETTING": 1}):
            found = {m.id: m for m in checks.run_checks(tags=["squidmesh"])}
            ids = [m.id for m in checks.run_checks(tags=["squidmesh"])]
    finally:
        Conf.ACK_FAILURES, Conf.MAX_ATTEMPTS, Conf.TIMEOUT = original
    assert ids.count("squidmesh.E013") == 2  # ack_failures, timeout >= retry
    assert "squidmesh.W001" in found
    assert "NOT_A_SETTING" in found["squidmesh.E014"].msg


@pytest.mark.parametrize(
    ("recovery", "named"),
    [
        ({"RECOVER_AFTER": 0}, "RECOVER_AFTER"),
        ({"RECOVER_AFTER": "5m"}, "RECOVER_AFTER"),
        ({"RECOVERY_INTERVAL": 1.5}, "RECOVERY_INTERVAL"),
        ({"RECOVERY_INTERVAL": True}, "RECOVERY_INTERVAL"),
        ({"RECOVERY_BATCH": 0}, "RECOVERY_BATCH"),
        ({"RELAY_POLL": 0}, "RELAY_POLL"),
        ({"RELAY_BATCH": 0.5}, "RELAY_BATCH"),
        ({"HEARTBEAT_INTERVAL": "5s"}, "HEARTBEAT_INTERVAL"),
        ({"HEARTBEAT_INTERVAL": 5, "HEARTBEAT_TIMEOUT": 8}, "HEARTBEAT_TIMEOUT"),
    ],
)
def test_check__recovery_settings_of_the_wrong_type_or_sign(recovery, named):
    with override_settings(SQUIDMESH=recovery):
        errors = [m for m in checks.run_checks(tags=["squidmesh"]) if m.id == "squidmesh.E014"]
    assert [m.msg.split("]")[0] for m in errors] == [f"SQUIDMESH[{named!r}"]


def test_check__valid_recovery_settings_pass():
    with override_settings(
        SQUIDMESH={"RECOVER_AFTER": 30.5, "RECOVERY_INTERVAL": None, "RECOVERY_BATCH": 10}
    ):
        ids = [m.id for m in checks.run_checks(tags=["squidmesh"])]
    assert "squidmesh.E014" not in ids


def test_check__outbox_without_any_relay_warns(redis_broker):
    with override_settings(SQUIDMESH={"RELAY_IN_CLUSTER": False}):
        found = {m.id: m for m in checks.run_checks(tags=["squidmesh"])}
    assert "manage.py squidmesh relay" in found["squidmesh.W002"].msg
    ids = [m.id for m in checks.run_checks(tags=["squidmesh"])]
    assert "squidmesh.W002" not in ids  # each qcluster runs a relay


def test_check__step_named_like_a_workflow_attribute_is_e017(monkeypatch):

    source = (
        "import squidmesh\n"
        "class Clash(squidmesh.Workflow):\n"
        "    name = 'tests.clash'\n"
        "    triggers = [squidmesh.manual()]\n"
        "    get_trigger = squidmesh.log('shadows Workflow.get_trigger')\n"
    )
    registry = WorkflowRegistry()
    with module_in_testapp("clashing_workflows", source):
        registry.autodiscover("clashing_workflows")
    monkeypatch.setattr(squidmesh.registry, "definition_errors", registry.definition_errors)
    found = [m for m in checks.run_checks(tags=["squidmesh"]) if m.id == "squidmesh.E017"]
    assert [m.obj for m in found] == ["tests.clash"]
    assert "step 'get_trigger' has the name of a Workflow attribute" in found[0].msg


@pytest.mark.parametrize("depth", [0, 201, "32", True])
def test_check__max_payload_depth_out_of_range_is_e014(depth):
    with override_settings(SQUIDMESH={"MAX_PAYLOAD_DEPTH": depth}):
        errors = [m for m in checks.run_checks(tags=["squidmesh"]) if m.id == "squidmesh.E014"]
    assert [m.msg.split("]")[0] for m in errors] == ["SQUIDMESH['MAX_PAYLOAD_DEPTH'"]


def test_autodiscover__workflows_module_may_import_the_api_functions(monkeypatch):
    # Django imports workflows.py from AppConfig.ready(), before apps.ready is
    # set; `from squidmesh import start_run` there once raised RuntimeError.
    from django.apps import apps

    source = (
        "import squidmesh\n"
        "from squidmesh import inspect_run, recover_runs, start_run\n"
        "class Eager(squidmesh.Workflow):\n"
        "    name = 'tests.eager'\n"
        "    triggers = [squidmesh.manual()]\n"
        "    only = squidmesh.log('uses start_run at call time only')\n"
        "HAS_API = hasattr(squidmesh, 'cancel_run')\n"
    )
    registry = WorkflowRegistry()
    monkeypatch.setattr(apps, "ready", False)
    with module_in_testapp("eager_workflows", source):
        registry.autodiscover("eager_workflows")
        module = sys.modules["tests.testapp.eager_workflows"]
    assert registry.definition_errors == []
    assert module.HAS_API is True
    with pytest.raises(RuntimeError, match=r"after django.setup\(\)"):
        module.start_run("tests.eager")

import pytest

import squidmesh
from squidmesh import Retry, Step, WorkflowDefinitionError, fields
from squidmesh.workflow.steps import Log, Wait


def noop(data, ctx):
    return {}


def check_ids(error: WorkflowDefinitionError) -> set[str]:
    return {check_id for check_id, _, _ in error.problems}


def define(**attrs):
    attrs.setdefault("name", "tests.defined")
    attrs.setdefault("triggers", [squidmesh.manual()])
    return type("Defined", (squidmesh.Workflow,), attrs)


def test_valid_workflow__entry_step_is_the_step_no_transition_leads_to():
    workflow = define(second=Step(noop), first=Step(noop, on_ok="second"))
    assert workflow.entry_step == "first"
    assert [step.name for step in workflow.ordered_steps()] == ["first", "second"]


@pytest.mark.parametrize(
    ("attrs", "check_id", "fragment"),
    [
        ({}, "squidmesh.E001", "declares no steps"),
        ({"a": Step(noop, on_ok="b"), "b": Step(noop, on_ok="a")}, "squidmesh.E002", "no entry"),
        ({"a": Step(noop), "b": Step(noop)}, "squidmesh.E003", "several entry steps: a, b"),
        ({"a": Step(noop, on_ok="nowhere")}, "squidmesh.E004", "unknown step 'nowhere'"),
        ({"a": Step(noop, on_error="ghost")}, "squidmesh.E004", "on error"),
        (
            {"a": Step(noop), "b": Step(noop, on_ok="c"), "c": Step(noop, on_ok="b")},
            "squidmesh.E005",
            "b, c cannot be reached",
        ),
        (
            {"a": Step(noop, on_ok="b"), "b": Step(noop, on_ok="c"), "c": Step(noop, on_ok="b")},
            "squidmesh.E006",
            "b -> c -> b",
        ),
        ({"a": Step("not callable")}, "squidmesh.E012", "neither a callable"),
        ({"a": Step(object)}, "squidmesh.E012", "no run(self, data, ctx) method"),
        ({"a": Step(noop, timeout=0.5)}, "squidmesh.E012", "at least 1 second"),
        ({"a": Log("hi", level="loud")}, "squidmesh.E012", "log level"),
        ({"name": "", "a": Step(noop)}, "squidmesh.E015", "non-empty string"),
        ({"triggers": [], "a": Step(noop)}, "squidmesh.E011", "declares no triggers"),
        (
            {"triggers": [squidmesh.manual("x"), squidmesh.manual("x")], "a": Step(noop)},
            "squidmesh.E011",
            "used twice",
        ),
        (
            {
                "triggers": [
                    squidmesh.manual("x", default=True),
                    squidmesh.manual("y", default=True),
                ],
                "a": Step(noop),
            },
            "squidmesh.E011",
            "several default triggers",
        ),
        (
            {"triggers": [squidmesh.cron("61 * * * *")], "a": Step(noop)},
            "squidmesh.E008",
            "is not valid",
        ),
        (
            {"triggers": [squidmesh.cron("0 3 * * *", timezone="Mars/Olympus")], "a": Step(noop)},
            "squidmesh.E008",
            "not a known IANA zone",
        ),
        (
            {
                "triggers": [squidmesh.manual(payload={"n": fields.Integer(default="three")})],
                "a": Step(noop),
            },
            "squidmesh.E009",
            "must be an integer",
        ),
        (
            {
                "triggers": [
                    squidmesh.manual(payload={"d": fields.Integer(default=squidmesh.TODAY)})
                ],
                "a": Step(noop),
            },
            "squidmesh.E009",
            "TODAY is only a default for String",
        ),
        (
            {
                "triggers": [squidmesh.manual(payload={"c": fields.Choice(["a"], default="b")})],
                "a": Step(noop),
            },
            "squidmesh.E009",
            "must be one of 'a'",
        ),
    ],
)
def test_definition_errors__raised_at_class_creation_with_check_id(attrs, check_id, fragment):
    with pytest.raises(WorkflowDefinitionError) as raised:
        define(**attrs)
    assert check_id in check_ids(raised.value)
    assert fragment in str(raised.value)


def test_definition_error__lists_every_problem_with_hints():
    with pytest.raises(WorkflowDefinitionError) as raised:
        define(triggers=[], a=Step(noop, on_ok="missing"))
    assert check_ids(raised.value) == {"squidmesh.E011", "squidmesh.E004"}
    assert "hint:" in str(raised.value)


def test_abstract_workflow__is_not_validated_and_cannot_be_registered():
    base = type("Base", (squidmesh.Workflow,), {"abstract": True})
    with pytest.raises(TypeError, match="abstract"):
        squidmesh.registry.register(base)


def test_retry_policy__rejects_nonsense():
    with pytest.raises(ValueError, match="at least 1"):
        Retry(max_attempts=0)
    with pytest.raises(ValueError, match="backoff_max"):
        Retry(backoff_min=10, backoff_max=1)
    with pytest.raises(TypeError, match="seconds"):
        Retry(backoff_min=-1)


def test_builtin_steps__wait_delays_and_log_renders_data():
    assert Wait(5).delay_before({}) == 5
    assert Log("order {ref} for {missing}").render({"ref": "A1"}) == "order A1 for {missing}"


def test_wait__without_a_duration_raises_naming_it():
    # Before, `wait(None)` failed formatting its description with an unrelated
    # message, and `wait(None, description=...)` was a step with no delay.
    with pytest.raises(TypeError, match="wait duration"):
        Wait(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wait duration"):
        Wait(None, description="pause")  # type: ignore[arg-type]


def test_retry_policy__none_backoff_raises_naming_the_field():
    with pytest.raises(TypeError, match=r"Retry\.backoff_max"):
        Retry(backoff_max=None)  # type: ignore[arg-type]


def test_workflow_cannot_be_instantiated():
    workflow = define(a=Step(noop))
    with pytest.raises(TypeError, match="start_run"):
        workflow()


def test_describe__is_json_ready_definition():
    import json

    from tests.testapp.workflows import FlakyWithFallback

    described = FlakyWithFallback.describe()
    json.dumps(described)
    assert described["entry_step"] == "flaky"
    flaky = described["steps"][0]
    assert flaky["on_error"] == "recover"
    assert flaky["retry"]["max_attempts"] == 2
    assert [s["name"] for s in described["steps"]] == ["flaky", "done", "recover"]
    assert described["triggers"][0]["payload"][0] == {
        "name": "fail_times",
        "type": "integer",
        "required": False,
        "default": 0,
    }


@pytest.mark.parametrize(
    "step_name", ["get_trigger", "describe", "triggers", "name", "steps", "ordered_steps"]
)
def test_step_named_like_a_workflow_attribute__is_a_definition_error_naming_it(step_name):
    # Accepted once, then start_run / describe failed with a TypeError.
    with pytest.raises(WorkflowDefinitionError) as raised:
        define(**{step_name: Step(noop)})
    assert "squidmesh.E017" in check_ids(raised.value)
    assert f"step {step_name!r} has the name of a Workflow attribute" in str(raised.value)

"""The SVG workflow diagram: layout, edge styles, progress colouring, escaping."""

import re
from types import SimpleNamespace

import pytest

import squidmesh
from squidmesh import Step, fields
from squidmesh.admin.diagram import RunProgress, render_diagram
from squidmesh.registry import WorkflowRegistry
from tests.testapp.workflows import step_a

scratch = WorkflowRegistry()


@squidmesh.register(to=scratch)
class Branching(squidmesh.Workflow):
    name = "diagram.<branching>"
    triggers = [squidmesh.manual(payload={"x": fields.Integer(default=1)})]

    first = Step(step_a, on_ok="second")
    second = Step(step_a, on_ok="third", on_error="rescue", retry=squidmesh.Retry(max_attempts=3))
    third = Step(step_a)
    rescue = Step(step_a, on_ok="third")


def nodes(svg):
    return dict(
        re.findall(r'<g class="squidmesh-node[^"]*" data-step="(\w+)" data-status="([\w-]+)"', svg)
    )


def edges(svg):
    return re.findall(
        r'data-source="(\w+)" data-target="(\w+)" data-outcome="(\w+)" data-taken="(\w+)">'
        r'<path d="[^"]+" fill="none" stroke="[^"]+" stroke-width="[\d.]+"( stroke-dasharray="6 4")?',
        svg,
    )


def progress(status, current, *steps):
    history = [
        SimpleNamespace(step=name, status=state, attempt_count=1, last_error=None)
        for name, state in steps
    ]
    return RunProgress.of(SimpleNamespace(status=status, current_step=current), history)


def test_render_diagram__has_a_box_per_step_and_a_complete_terminal():
    svg = render_diagram(Branching)

    assert set(nodes(svg)) == {"first", "second", "third", "rescue", "complete"}
    assert all(status == "definition" for status in nodes(svg).values())


def test_render_diagram__ok_edges_are_solid_and_error_edges_dashed():
    found = {
        (source, target, outcome, dashed)
        for source, target, outcome, _, dashed in edges(render_diagram(Branching))
    }

    assert found == {
        ("first", "second", "ok", ""),
        ("second", "third", "ok", ""),
        ("second", "rescue", "error", ' stroke-dasharray="6 4"'),
        ("rescue", "third", "ok", ""),
        ("third", "complete", "ok", ""),
    }
    assert "on error" in render_diagram(Branching)


def test_render_diagram__places_steps_in_columns_by_execution_order():
    svg = render_diagram(Branching)

    x = {
        name: float(left)
        for name, left in re.findall(
            r'data-step="(\w+)"[^>]*>(?:<title>[^<]*</title>)?<rect x="([\d.]+)"', svg
        )
    }
    assert x["first"] < x["second"] < x["rescue"] < x["third"] < x["complete"]


def test_render_diagram__colours_steps_by_the_runs_step_statuses():
    svg = render_diagram(
        Branching,
        progress(
            "running", "rescue", ("first", "completed"), ("second", "failed"), ("rescue", "running")
        ),
    )

    assert nodes(svg) == {
        "first": "completed",
        "second": "failed",
        "rescue": "running",
        "third": "not-reached",
        "complete": "not-reached",
    }
    assert 'data-step="rescue" data-status="running" data-current="true"' in svg
    assert svg.count('data-current="true"') == 1


def test_render_diagram__marks_the_transitions_the_run_took():
    svg = render_diagram(
        Branching,
        progress(
            "completed",
            None,
            ("first", "completed"),
            ("second", "failed"),
            ("rescue", "completed"),
            ("third", "completed"),
        ),
    )

    taken = {(source, target) for source, target, _, flag, _ in edges(svg) if flag == "true"}
    assert taken == {
        ("first", "second"),
        ("second", "rescue"),
        ("rescue", "third"),
        ("third", "complete"),
    }
    assert nodes(svg)["complete"] == "completed"
    assert 'data-current="true"' not in svg  # a completed run has no current step


@pytest.mark.parametrize("step_status", ["failed", "running", "retrying"])
def test_render_diagram__cancelled_run_shows_its_step_as_cancelled_there(step_status):
    svg = render_diagram(
        Branching,
        progress("cancelled", "second", ("first", "completed"), ("second", step_status)),
    )

    assert nodes(svg)["second"] == "cancelled"
    assert nodes(svg)["first"] == "completed"  # only the step it stopped at
    assert 'data-step="second" data-status="cancelled" data-current="true"' in svg
    assert "■ cancelled here" in svg
    assert "Cancelled · 1 attempt" in svg
    assert "#c62828" not in svg  # no red "failed" box anywhere


def test_render_diagram__cancelled_pending_run_marks_the_entry_step():
    svg = render_diagram(Branching, progress("cancelled", "first"))

    assert 'data-step="first" data-status="not-reached" data-current="true"' in svg
    assert "■ cancelled here" in svg


def test_render_diagram__failed_step_of_a_failed_run_stays_failed():
    svg = render_diagram(Branching, progress("failed", "second", ("second", "failed")))

    assert nodes(svg)["second"] == "failed"
    assert "■ stopped here" in svg


def test_render_diagram__escapes_names_and_error_messages():
    run = SimpleNamespace(status="failed", current_step="first")
    history = [
        SimpleNamespace(
            step="first",
            status="failed",
            attempt_count=1,
            last_error={"type": "StepFailure", "message": "<script>alert(1)</script>"},
        )
    ]

    svg = render_diagram(Branching, RunProgress.of(run, history), dom_id='x"><script>')

    assert "<script>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "diagram.&lt;branching&gt;" in svg


def test_render_diagram__marker_ids_are_unique_per_diagram():
    one, two = render_diagram(Branching, dom_id="one"), render_diagram(Branching, dom_id="two")

    assert 'id="one-arrow"' in one and 'id="two-arrow"' in two
    assert "url(#one-arrow)" in one and "url(#two-arrow)" not in one


@pytest.mark.parametrize("name", ["shop.order_fulfilment", "shop.daily_report", "tests.waiting"])
def test_render_diagram__draws_every_registered_example(name):
    workflow = squidmesh.registry.get(name)

    svg = render_diagram(workflow)

    assert set(nodes(svg)) == {step for step in workflow.steps} | {"complete"}

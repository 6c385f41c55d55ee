"""Server-side SVG picture of a workflow's steps and transitions, optionally with a run's progress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from squidmesh.admin.display import error_summary
from squidmesh.lifecycle import RunStatus, StepStatus
from squidmesh.workflow.base import Workflow
from squidmesh.workflow.steps import COMPLETE, Step

__all__ = ["RunProgress", "render_diagram"]

# Geometry (px). Columns are ranks (longest path from the entry step), rows
# are lanes inside a rank, so the ok path runs along the top row and error
# branches sit below it.
BOX_HEIGHT = 50
BOX_HEIGHT_WITH_PROGRESS = 64
MIN_BOX_WIDTH = 120
TERMINAL_WIDTH = 110
TERMINAL_HEIGHT = 34
GAP_X = 44
GAP_Y = 34
PAD_X = 14
PAD_TOP = 26  # room for the "current" tag above a box
PAD_BOTTOM = 14
ROUTE_STEP = 14  # vertical spacing of edges routed under the rows
CHAR_WIDTH_TITLE = 7.8  # 13px bold sans-serif, measured on Chromium's default face
CHAR_WIDTH_SMALL = 6.4  # 11px

TEXT = "#1f2933"
MUTED = "#52606d"
EDGE = "#9aa5b1"
EDGE_TAKEN = "#334e68"
CURRENT = "#0b57d0"

#: (fill, stroke) of a step box by the status of its step run.
# Keyed by plain strings: statuses arrive as `str` from the database.
STEP_COLOURS: dict[str, tuple[str, str]] = {
    StepStatus.COMPLETED: ("#e3f4e8", "#2e7d32"),
    StepStatus.FAILED: ("#fdeceb", "#c62828"),
    StepStatus.RUNNING: ("#e3effd", "#1565c0"),
    StepStatus.RETRYING: ("#fff3df", "#c77700"),
    StepStatus.CANCELLED: ("#eceff1", "#546e7a"),
}
NOT_REACHED = ("#fbfbfc", "#b8c0c8")
#: Step statuses that, at the step a cancelled run stopped at, mean "cancelled there".
INTERRUPTED_BY_CANCEL = {StepStatus.FAILED, StepStatus.RUNNING, StepStatus.RETRYING}
DEFINITION_ONLY = ("#f2f7fa", "#5b8fb0")


@dataclass
class RunProgress:
    """What one run did, as the diagram needs it (built from `inspect_run(..., include_history=True)`)."""

    run_status: str
    current_step: str | None
    path: list[str] = field(default_factory=list)
    step_statuses: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, run: Any, history: Sequence[Any]) -> RunProgress:
        """Return the progress of `run` given its step runs in execution order.

        In a cancelled run, the step it stopped at shows as cancelled: a
        step that failed, or was running or waiting, when the cancel landed
        did not fail the run.
        """
        progress = cls(run_status=run.status, current_step=run.current_step)
        for step_run in history:
            progress.path.append(step_run.step)
            status = step_run.status
            if (
                run.status == RunStatus.CANCELLED
                and step_run.step == run.current_step
                and status in INTERRUPTED_BY_CANCEL
            ):
                status = StepStatus.CANCELLED
            progress.step_statuses[step_run.step] = status
            progress.attempts[step_run.step] = step_run.attempt_count
            if step_run.last_error:
                progress.errors[step_run.step] = error_summary(step_run.last_error)
        return progress

    def taken_edges(self, workflow: type[Workflow]) -> set[tuple[str, str]]:
        """Return the (source, target) transitions this run followed."""
        edges = set(zip(self.path, self.path[1:], strict=False))
        if self.run_status == RunStatus.COMPLETED and self.path:
            edges.add((self.path[-1], COMPLETE))
        return edges


@dataclass
class _Node:
    name: str
    rank: int
    lane: int = 0
    step: Step | None = None  # None for the "complete" terminal

    @property
    def is_terminal(self) -> bool:
        return self.step is None


def render_diagram(
    workflow: type[Workflow], progress: RunProgress | None = None, *, dom_id: str = "diagram"
) -> SafeString:
    """Return an inline `<svg>` of `workflow`: a box per step, solid arrows for `on_ok`,
    dashed arrows for `on_error`, a `complete` terminal; with `progress`, boxes are
    coloured by the run's step statuses and the current step is outlined."""
    steps = workflow.ordered_steps()
    nodes = _layout(workflow, steps)
    box_height = BOX_HEIGHT_WITH_PROGRESS if progress else BOX_HEIGHT
    ranks = max(node.rank for node in nodes.values()) + 1
    lanes = max(node.lane for node in nodes.values()) + 1
    # Each column is as wide as its widest box, so one long name does not
    # widen the whole picture.
    widths = [float(MIN_BOX_WIDTH)] * ranks
    for node in nodes.values():
        widths[node.rank] = max(widths[node.rank], _box_width(node, progress))
    lefts = [PAD_X + sum(widths[:rank]) + rank * GAP_X for rank in range(ranks)]

    def x_of(node: _Node) -> float:
        return lefts[node.rank]

    def width_of(node: _Node) -> float:
        return TERMINAL_WIDTH if node.is_terminal else widths[node.rank]

    def y_of(node: _Node) -> float:
        return PAD_TOP + node.lane * (box_height + GAP_Y)

    rows_bottom = PAD_TOP + lanes * box_height + (lanes - 1) * GAP_Y
    taken = progress.taken_edges(workflow) if progress else set()

    edges: list[str] = []
    routed = 0
    for step in steps:
        for outcome, target in step.transitions().items():
            source, sink = nodes[step.name], nodes[target]
            is_taken = (step.name, target) in taken
            if sink.rank - source.rank == 1:
                x1 = x_of(source) + width_of(source)
                y1 = y_of(source) + box_height / 2
                x2 = x_of(sink)
                y2 = y_of(sink) + box_height / 2
                bend = GAP_X / 2
                path = (
                    f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} "
                    f"{x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
                )
                label_at = ((x1 + x2) / 2, (y1 + y2) / 2 - 5)
            else:
                # Skips columns: go under every row so the line crosses no box.
                routed += 1
                route_y = rows_bottom + routed * ROUTE_STEP + 6
                x1 = x_of(source) + width_of(source) / 2 + (8 if outcome == "error" else -8)
                y1 = y_of(source) + box_height
                x2 = x_of(sink) + width_of(sink) / 2 - 8
                y2 = (
                    y_of(sink) + (box_height + TERMINAL_HEIGHT) / 2
                    if sink.is_terminal
                    else y_of(sink) + box_height
                )
                path = (
                    f"M{x1:.1f},{y1:.1f} L{x1:.1f},{route_y - 8:.1f} "
                    f"Q{x1:.1f},{route_y:.1f} {x1 + 8:.1f},{route_y:.1f} "
                    f"L{x2 - 8:.1f},{route_y:.1f} Q{x2:.1f},{route_y:.1f} {x2:.1f},{route_y - 8:.1f} "
                    f"L{x2:.1f},{y2:.1f}"
                )
                label_at = ((x1 + x2) / 2, route_y - 4)
            edges.append(_edge(path, outcome, is_taken, label_at, step.name, target, dom_id))

    boxes = [
        _box(node, x_of(node), y_of(node), width_of(node), box_height, progress)
        for node in nodes.values()
    ]
    width = lefts[-1] + TERMINAL_WIDTH + PAD_X
    height = rows_bottom + routed * ROUTE_STEP + PAD_BOTTOM + (10 if routed else 0)
    title = f"Workflow {workflow.name}: " + ", ".join(
        f"{s.name} → {' / '.join(f'{o} {t}' for o, t in s.transitions().items())}" for s in steps
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="squidmesh-diagram" id="{escape(dom_id)}" '
        f'role="img" aria-labelledby="{escape(dom_id)}-title" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        # Shrink to the container down to 3/4 of the natural size, then scroll.
        f'style="max-width:100%;min-width:{width * 0.75:.0f}px;height:auto" '
        f'data-workflow="{escape(workflow.name)}" '
        f"font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\">"
        f'<title id="{escape(dom_id)}-title">{escape(title)}</title>'
        f"{_markers(dom_id)}{''.join(edges)}{''.join(boxes)}</svg>"
    )
    # Every interpolated name, label and message above is escaped.
    return mark_safe(svg)


def _layout(workflow: type[Workflow], steps: Sequence[Step]) -> dict[str, _Node]:
    """Return a node per step (and the terminal) with its column (rank) and row (lane)."""
    order = [step.name for step in steps]
    rank = {name: 0 for name in order}
    # ordered_steps() is not a topological order for error branches, so relax
    # the longest-path ranks until stable (the graph is a validated DAG).
    for _ in range(len(order) + 1):
        changed = False
        for name in order:
            for target in workflow.steps[name].transitions().values():
                if target != COMPLETE and rank[target] < rank[name] + 1:
                    rank[target] = rank[name] + 1
                    changed = True
        if not changed:
            break
    nodes: dict[str, _Node] = {}
    lanes_used: dict[int, int] = {}
    for name in order:
        lane = lanes_used.get(rank[name], 0)
        lanes_used[rank[name]] = lane + 1
        nodes[name] = _Node(name, rank[name], lane, workflow.steps[name])
    final_rank = max(rank.values()) + 1
    nodes[COMPLETE] = _Node(COMPLETE, final_rank, 0)
    return nodes


def _box_width(node: _Node, progress: RunProgress | None) -> float:
    if node.step is None:
        return TERMINAL_WIDTH
    lines = [len(node.step.name) * CHAR_WIDTH_TITLE, len(_kind_line(node.step)) * CHAR_WIDTH_SMALL]
    if progress:
        lines.append(len(_status_line(node.name, progress)) * CHAR_WIDTH_SMALL)
    return max(MIN_BOX_WIDTH, max(lines) + 28)


def _kind_line(step: Step) -> str:
    if step.kind == "wait":
        return f"wait {getattr(step, 'duration', 0):g} s"
    if step.kind == "log":
        return f"log {getattr(step, 'level', 'info')}"
    # Timeouts and backoff are in the tooltip and the workflows page; the box stays narrow.
    if step.retry.max_attempts > 1:
        return f"{step.kind} · {step.retry.max_attempts} attempts"
    return step.kind


def _status_line(name: str, progress: RunProgress) -> str:
    status = progress.step_statuses.get(name)
    if status is None:
        return "next" if name == progress.current_step else "not reached"
    attempts = progress.attempts.get(name, 0)
    label = StepStatus(status).label if status in StepStatus.values else status
    return f"{label} · {attempts} attempt{'s' if attempts != 1 else ''}"


def _box(
    node: _Node, x: float, y: float, width: float, height: float, progress: RunProgress | None
) -> str:
    if node.is_terminal:
        return _terminal(x, y, width, height, progress)
    step = node.step
    assert step is not None
    status = progress.step_statuses.get(node.name) if progress else None
    if progress is None:
        fill, stroke = DEFINITION_ONLY
    else:
        fill, stroke = STEP_COLOURS.get(status or "", NOT_REACHED)
    is_current = (
        progress is not None
        and node.name == progress.current_step
        and progress.run_status != RunStatus.COMPLETED
    )
    dash = ' stroke-dasharray="5 3"' if progress and status is None else ""
    current_attr = ' data-current="true"' if is_current else ""
    cx = x + width / 2
    tooltip = [f"{step.name} ({_kind_line(step)})"]
    if step.timeout:
        tooltip.append(f"timeout {step.timeout:g} s")
    if step.description:
        tooltip.append(step.description)
    if progress:
        tooltip.append(_status_line(node.name, progress))
        if node.name in progress.errors:
            tooltip.append(f"last error: {progress.errors[node.name]}")
    parts = [
        f'<g class="squidmesh-node" data-step="{escape(node.name)}" '
        f'data-status="{escape(status or ("definition" if progress is None else "not-reached"))}"'
        f"{current_attr}>",
        f"<title>{escape(chr(10).join(tooltip))}</title>",
    ]
    if progress is not None and is_current:
        stopped_tags: dict[str, str] = {
            RunStatus.FAILED: "■ stopped here",
            RunStatus.CANCELLED: "■ cancelled here",
        }
        tag = stopped_tags.get(progress.run_status, "▶ current step")
        parts.append(
            f'<rect class="squidmesh-current" x="{x - 4:.1f}" y="{y - 4:.1f}" '
            f'width="{width + 8:.1f}" height="{height + 8:.1f}" '
            f'rx="11" fill="none" stroke="{CURRENT}" stroke-width="2.5"/>'
            f'<text class="squidmesh-current" x="{x - 2:.1f}" y="{y - 9:.1f}" font-size="11" '
            f'font-weight="600" fill="{CURRENT}">{tag}</text>'
        )
    parts.append(
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="8" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.6"{dash}/>'
        f'<text x="{cx:.1f}" y="{y + 20:.1f}" text-anchor="middle" font-size="13" '
        f'font-weight="600" fill="{TEXT}">{escape(step.name)}</text>'
        f'<text x="{cx:.1f}" y="{y + 36:.1f}" text-anchor="middle" font-size="11" '
        f'fill="{MUTED}">{escape(_kind_line(step))}</text>'
    )
    if progress:
        parts.append(
            f'<text x="{cx:.1f}" y="{y + 53:.1f}" text-anchor="middle" font-size="11" '
            f'font-weight="600" fill="{stroke if status else MUTED}">'
            f"{escape(_status_line(node.name, progress))}</text>"
        )
    parts.append("</g>")
    group = "".join(parts)
    if progress:
        return f'<a href="#step-{escape(node.name)}">{group}</a>'
    return group


def _terminal(x: float, y: float, width: float, height: float, progress: RunProgress | None) -> str:
    reached = bool(progress and progress.run_status == RunStatus.COMPLETED)
    fill, stroke = STEP_COLOURS[StepStatus.COMPLETED] if reached or not progress else NOT_REACHED
    w, h = TERMINAL_WIDTH, TERMINAL_HEIGHT
    cy = y + height / 2
    status = "completed" if reached else ("definition" if progress is None else "not-reached")
    return (
        f'<g class="squidmesh-node squidmesh-terminal" data-step="{COMPLETE}" data-status="{status}">'
        f"<title>run completes</title>"
        f'<rect x="{x:.1f}" y="{cy - h / 2:.1f}" width="{w:.1f}" height="{h}" rx="17" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.6"/>'
        f'<text x="{x + w / 2:.1f}" y="{cy + 4:.1f}" text-anchor="middle" font-size="12" '
        f'font-weight="600" fill="{TEXT}">✔ complete</text></g>'
    )


def _edge(
    path: str,
    outcome: str,
    taken: bool,
    label_at: tuple[float, float],
    source: str,
    target: str,
    dom_id: str,
) -> str:
    colour = EDGE_TAKEN if taken else EDGE
    dash = ' stroke-dasharray="6 4"' if outcome == "error" else ""
    marker = f"{dom_id}-arrow{'-taken' if taken else ''}"
    label = ""
    if outcome == "error":
        label = (
            f'<text x="{label_at[0]:.1f}" y="{label_at[1]:.1f}" text-anchor="middle" '
            f'font-size="10" fill="{colour}">on error</text>'
        )
    return (
        f'<g class="squidmesh-edge" data-source="{escape(source)}" data-target="{escape(target)}" '
        f'data-outcome="{outcome}" data-taken="{str(taken).lower()}">'
        f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="{2.4 if taken else 1.5}"'
        f'{dash} marker-end="url(#{escape(marker)})"/>{label}</g>'
    )


def _markers(dom_id: str) -> str:
    return (
        "<defs>"
        + "".join(
            f'<marker id="{escape(dom_id)}-{name}" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerUnits="userSpaceOnUse" markerWidth="10" markerHeight="10" '
            f'orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
            for name, colour in (("arrow", EDGE), ("arrow-taken", EDGE_TAKEN))
        )
        + "</defs>"
    )

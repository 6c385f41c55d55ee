"""Smoke check: every example workflow (and every chaos workflow) reaches its expected end."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from verification.harness import (
    KINDS,
    Clusters,
    Harness,
    converge,
    drain_queue,
    print_table,
    reconnecting,
)

__all__ = ["run"]


@dataclass
class Case:
    """A run of an example workflow and what its history must show."""

    label: str
    workflow: str
    trigger: str
    payload: dict[str, Any]
    status: str
    path: list[str]
    context: dict[str, Any] = field(default_factory=dict)
    attempts: dict[str, list[str]] = field(default_factory=dict)
    order_status: str | None = None
    run_id: str = ""


def example_cases(tag: str) -> list[Case]:
    order_path = ["reserve_stock", "fraud_screening", "announce_charge", "charge_card"]
    return [
        Case(
            "checkout, one decline, then shipped",
            "shop.order_fulfilment",
            "checkout",
            {"order_ref": f"{tag}-1", "amount_cents": 4200, "declines": 1},
            "completed",
            [*order_path, "ship"],
            context={"shipped": True, "charge_id": f"ch_{tag}-1_2"},
            attempts={"charge_card": ["failed", "succeeded"]},
            order_status="shipped",
        ),
        Case(
            "backoffice, stolen card: terminal, refunded",
            "shop.order_fulfilment",
            "backoffice",
            {"order_ref": f"{tag}-2", "amount_cents": 999, "card": "stolen", "tags": ["vip"]},
            "completed",
            [*order_path, "refund_and_notify"],
            context={"customer_notified": True},
            attempts={"charge_card": ["failed"]},
            order_status="payment_failed",
        ),
        Case(
            "checkout, declines exhaust retries, refunded",
            "shop.order_fulfilment",
            "checkout",
            {"order_ref": f"{tag}-3", "amount_cents": 100, "declines": 5},
            "completed",
            [*order_path, "refund_and_notify"],
            context={"customer_notified": True},
            attempts={"charge_card": ["failed", "failed", "failed"]},
            order_status="payment_failed",
        ),
        Case(
            "daily report on demand",
            "shop.daily_report",
            "on_demand",
            {},
            "completed",
            ["compile_report", "announce"],
        ),
        Case(
            "daily report as the nightly cron fires it",
            "shop.daily_report",
            "nightly",
            {"report_date": "2024-01-31"},
            "completed",
            ["compile_report", "announce"],
            context={"report_date": "2024-01-31"},
        ),
        Case(
            "checkout cancelled during fraud screening",
            "shop.order_fulfilment",
            "checkout",
            {"order_ref": f"{tag}-4", "amount_cents": 500},
            "cancelled",
            ["reserve_stock"],
        ),
    ]


def run(options) -> int:
    from shop.models import Order

    import squidmesh
    from squidmesh.testing import wait_for

    harness = Harness("smoke")
    clusters = Clusters(1)
    tag = f"SMOKE-{int(time.time())}"
    cases = example_cases(tag)
    try:
        clusters.start()
        for case in cases:
            case.run_id = str(
                squidmesh.start_run(case.workflow, case.payload, trigger=case.trigger).pk
            )
        # Cancel the last one while it sits in its fraud-screening wait.
        cancelled = cases[-1]
        wait_for(
            lambda: squidmesh.inspect_run(cancelled.run_id).current_step == "fraud_screening",
            timeout=30,
        )
        squidmesh.cancel_run(cancelled.run_id)
        replay_of = cases[0]
        chaos_runs = {}
        rng = random.Random(options.seed)
        for kind in KINDS:
            payload = kind.payload(rng)
            chaos_runs[str(squidmesh.start_run(kind.workflow, payload).pk)] = kind
        converged = converge(options.bound)
        replay = Case(
            "replay of the first checkout",
            replay_of.workflow,
            replay_of.trigger,
            replay_of.payload,
            "completed",
            replay_of.path,
            context={"shipped": True},
            order_status="shipped",
        )
        replay.run_id = str(squidmesh.replay_run(replay_of.run_id).pk)
        cases.append(replay)
        converged = converge(options.bound) and converged
        converged_at = time.monotonic() - harness.started
        leftover = drain_queue(5)
    finally:
        clusters.stop()

    rows, problems = [], 0
    for case in cases:
        run = reconnecting(
            lambda case=case: squidmesh.inspect_run(case.run_id, include_history=True)
        )
        found = check_case(case, run, Order)
        problems += bool(found)
        rows.append(
            (case.workflow, case.label, run.status, "ok" if not found else "; ".join(found))
        )
    for run_id, kind in chaos_runs.items():
        run = squidmesh.inspect_run(run_id)
        ok = run.status == kind.expected
        problems += not ok
        rows.append(
            (
                kind.workflow,
                f"chaos kind {kind.name!r}",
                run.status,
                "ok" if ok else f"expected {kind.expected}",
            )
        )
    print_table("smoke: example workflows", ["workflow", "case", "status", "check"], rows)
    expected = {case.run_id: frozenset({case.status}) for case in cases}
    expected.update({run_id: frozenset({kind.expected}) for run_id, kind in chaos_runs.items()})
    status = harness.verdict(
        load=None,
        clusters=clusters,
        converged=converged,
        converged_at=converged_at,
        leftover=leftover,
        expected=expected,
    )
    if problems:
        print(f"smoke: {problems} case(s) did not match their expected history")
        status = 1
    clusters.report_logs(failed=bool(status), verbose=options.verbose)
    return status


def check_case(case: Case, run, order_model) -> list[str]:
    """Return what differs between `run` and what `case` expects."""
    found = []
    if run.status != case.status:
        found.append(f"status {run.status}, expected {case.status}")
    path = [step_run.step for step_run in run.history]
    if path != case.path:
        found.append(f"path {path}")
    for key, value in case.context.items():
        if run.context.get(key) != value:
            found.append(f"context[{key!r}] = {run.context.get(key)!r}, expected {value!r}")
    for step, statuses in case.attempts.items():
        step_run = next((s for s in run.history if s.step == step), None)
        seen = [a.status for a in step_run.attempts.all()] if step_run else []
        if seen != statuses:
            found.append(f"{step} attempts {seen}, expected {statuses}")
    if case.order_status:
        order = order_model.objects.filter(reference=case.payload["order_ref"]).first()
        if order is None or order.status != case.order_status:
            found.append(
                f"order is {order.status if order else 'missing'}, expected {case.order_status}"
            )
    return found

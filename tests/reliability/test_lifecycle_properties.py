"""Property: random start / deliver / duplicate / crash / cancel / replay sequences keep every invariant."""

import uuid
from collections import defaultdict
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

import squidmesh
from squidmesh import signals
from squidmesh.lifecycle import ALLOWED_TRANSITIONS, TERMINAL_STATUSES, RunStatus
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.runtime.dispatcher import EXECUTE_STEP
from squidmesh.runtime.executor import Claim, StepExecutor, execute_step
from tests.testapp.models import Execution
from verification import invariants

# Workflows of the test app; the payload picks how their steps behave.
WORKLOADS = st.one_of(
    st.tuples(
        st.just("tests.three_steps"), st.fixed_dictionaries({"label": st.text("abé", max_size=3)})
    ),
    st.tuples(
        st.just("tests.flaky"),
        st.fixed_dictionaries(
            {
                "fail_times": st.integers(0, 4),
                "terminal": st.booleans(),
                "raise_plain": st.booleans(),
            }
        ),
    ),
    st.tuples(
        st.just("tests.flaky_with_fallback"),
        st.fixed_dictionaries({"fail_times": st.integers(0, 3)}),
    ),
    st.tuples(st.just("tests.waiting"), st.just({})),
    st.tuples(st.just("tests.slow"), st.just({"sleep": 0.0})),
)


def queued_tasks(run_id: str) -> list[tuple[OrmQ, tuple]]:
    """The run's step tasks in the queue, oldest first (due time ignored: time is free here)."""
    found = []
    for row in OrmQ.objects.order_by("id"):
        task = SignedPackage.loads(row.payload)
        if task["func"] == EXECUTE_STEP and task["args"][0] == run_id:
            found.append((row, task["args"]))
    return found


class RunLifecycle(RuleBasedStateMachine):
    runs = Bundle("runs")

    def __init__(self):
        super().__init__()
        self.transitions: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.delivered: dict[str, list[tuple[str, int]]] = defaultdict(list)
        self.ended: dict[str, tuple[str, object]] = {}
        self.cancelled: set[str] = set()
        signals.run_transition.connect(self.on_transition)

    def on_transition(self, sender, *, run_id, from_status, to_status, **metadata):
        self.transitions[run_id].append((from_status, to_status))

    def teardown(self):
        signals.run_transition.disconnect(self.on_transition)
        WorkflowRun.objects.all().delete()
        OrmQ.objects.all().delete()
        Execution.objects.all().delete()

    # -- rules -----------------------------------------------------------------

    @rule(target=runs, workload=WORKLOADS)
    def start(self, workload):
        workflow, payload = workload
        run = squidmesh.start_run(workflow, payload)
        assert run.status == RunStatus.PENDING
        return str(run.pk)

    @rule(run_id=runs)
    def deliver(self, run_id):
        """The queue hands the run's oldest task to a worker, which runs it and acknowledges it."""
        tasks = queued_tasks(run_id)
        if not tasks:
            return
        row, args = tasks[0]
        row.delete()
        self.delivered[run_id].append((args[1], args[2]))
        execute_step(*args)

    @rule(run_id=runs, data=st.data())
    def deliver_again(self, run_id, data):
        """A duplicate of a delivery already made changes nothing and says why."""
        if not self.delivered[run_id]:
            return
        step, attempt = data.draw(st.sampled_from(self.delivered[run_id]))
        run = WorkflowRun.objects.get(pk=run_id)
        dead_attempt = StepAttempt.objects.filter(run_id=run_id, status="running").exists()
        before = self.state_of(run_id)
        result = execute_step(run_id, step, attempt)
        if dead_attempt or run.status == RunStatus.CANCELLING:
            return  # it may close the dead worker's attempt: checked by the invariants
        assert result.startswith("skipped: "), result
        assert self.state_of(run_id) == before

    @rule(run_id=runs)
    def crash_mid_step(self, run_id):
        """A worker claims the run's next task and dies; the task stays queued (the lease)."""
        tasks = queued_tasks(run_id)
        if not tasks:
            return
        run_id, step, attempt = tasks[0][1]
        claim = StepExecutor(run_id, step, attempt)._claim()
        if isinstance(claim, Claim):
            # Long enough ago that the redelivery presumes the worker dead.
            StepAttempt.objects.filter(pk=claim.attempt.pk).update(
                started_at=timezone.now() - timedelta(minutes=10)
            )

    @rule(run_id=runs)
    def cancel(self, run_id):
        status = WorkflowRun.objects.get(pk=run_id).status
        try:
            run = squidmesh.cancel_run(run_id)
        except squidmesh.InvalidTransition:
            assert status in TERMINAL_STATUSES
            return
        assert status not in TERMINAL_STATUSES
        assert run.status in (RunStatus.CANCELLED, RunStatus.CANCELLING)
        self.cancelled.add(run_id)

    @rule(target=runs, run_id=runs)
    def replay(self, run_id):
        source = self.state_of(run_id)
        replay = squidmesh.replay_run(run_id)
        assert replay.replayed_from_id == uuid.UUID(run_id)
        assert replay.status == RunStatus.PENDING
        assert self.state_of(run_id) == source  # the source is untouched
        return str(replay.pk)

    @rule()
    def settle(self):
        """Deliver everything queued until nothing is left: every run must then have ended."""
        for _ in range(500):
            rows = list(OrmQ.objects.order_by("id")[:1])
            if not rows:
                break
            task = SignedPackage.loads(rows[0].payload)
            rows[0].delete()
            execute_step(*task["args"])
        assert not OrmQ.objects.exists()
        for run in WorkflowRun.objects.all():
            assert run.status in TERMINAL_STATUSES, (run.pk, run.status, run.current_step)
            if str(run.pk) in self.cancelled:
                assert run.status == RunStatus.CANCELLED, (run.pk, run.status)

    # -- invariants ------------------------------------------------------------

    @invariant()
    def transitions_follow_the_lifecycle_table(self):
        current = dict(WorkflowRun.objects.values_list("pk", "status"))
        for run_id, moves in self.transitions.items():
            expected_from = RunStatus.PENDING
            for from_status, to_status in moves:
                assert from_status == expected_from, (run_id, moves)
                assert to_status in ALLOWED_TRANSITIONS[from_status], (run_id, moves)
                expected_from = to_status
            assert current[uuid.UUID(run_id)] == expected_from, (run_id, moves)

    @invariant()
    def a_terminal_run_never_changes_again(self):
        for pk, status, finished_at in WorkflowRun.objects.values_list(
            "pk", "status", "finished_at"
        ):
            key = str(pk)
            if key in self.ended:
                assert (status, finished_at) == self.ended[key], key
            elif status in TERMINAL_STATUSES:
                assert finished_at is not None
                self.ended[key] = (status, finished_at)

    @invariant()
    def durable_execution_invariants_hold(self):
        snapshot = invariants.Snapshot.take(ledger=list(Execution.objects.all()))
        violations = [v for found in invariants.check(snapshot).values() for v in found]
        assert violations == []

    def state_of(self, run_id):
        run = WorkflowRun.objects.get(pk=run_id)
        return (
            run.status,
            run.current_step,
            run.context,
            run.updated_at,
            list(StepRun.objects.filter(run_id=run_id).values_list("step", "status")),
            list(StepAttempt.objects.filter(run_id=run_id).values_list("number", "status")),
            len(queued_tasks(run_id)),
        )


@pytest.mark.slow  # ~10 s of stateful property testing: not in the fast tier
@pytest.mark.django_db(transaction=True)
def test_run_lifecycle__random_operation_sequences_keep_every_invariant():
    # Transactional: lifecycle signals are sent on commit.
    RunLifecycle.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    RunLifecycle.TestCase().runTest()

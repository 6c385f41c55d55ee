"""System checks: workflow definition errors and settings that break delivery guarantees.

Check ids are listed in docs/reference/checks.md. No check touches the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core import checks

from squidmesh.workflow.validation import CHECK_IDS

if TYPE_CHECKING:
    from squidmesh.workflow.base import Workflow

__all__ = ["check_cron_settings", "check_settings", "check_workflows"]


@checks.register("squidmesh")
def check_workflows(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from squidmesh.registry import registry

    messages: list[checks.CheckMessage] = []
    for error in registry.definition_errors:
        for check_id, message, hint in error.problems:
            messages.append(
                checks.Error(
                    f"Workflow {error.workflow!r}: {message}.",
                    hint=hint or CHECK_IDS.get(check_id),
                    obj=error.workflow,
                    id=check_id,
                )
            )
    messages += _timeout_problems(registry.all())
    return messages


def _timeout_problems(workflows: list[type[Workflow]]) -> list[checks.CheckMessage]:
    from django_q.conf import Conf

    from squidmesh.conf import settings

    messages: list[checks.CheckMessage] = []
    lease = Conf.RETRY
    for workflow in workflows:
        for step in workflow.steps.values():
            timeout = step.timeout or Conf.TIMEOUT
            if timeout is None:
                continue
            if timeout + settings.INTERRUPTED_GRACE >= lease:
                messages.append(
                    checks.Error(
                        f"Workflow {workflow.name!r}: step {step.name!r} may run for "
                        f"{timeout:g}s (+{settings.INTERRUPTED_GRACE}s grace) but django-q2 "
                        f"redelivers a task after Q_CLUSTER['retry'] = {lease}s.",
                        hint="Raise Q_CLUSTER['retry'] above the longest step timeout plus "
                        "SQUIDMESH['INTERRUPTED_GRACE'], or lower the step's timeout.",
                        obj=workflow.name,
                        id="squidmesh.E010",
                    )
                )
    return messages


@checks.register("squidmesh")
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.conf import settings as django_settings
    from django_q.conf import Conf

    from squidmesh.conf import settings

    messages: list[checks.CheckMessage] = []
    unknown = settings.unknown_keys()
    if unknown:
        messages.append(
            checks.Error(
                f"Unknown SQUIDMESH settings: {', '.join(unknown)}.",
                hint="See docs/reference/settings.md for the supported keys.",
                id="squidmesh.E014",
            )
        )
    messages.extend(_maintenance_setting_errors(settings))
    if "django_q" not in {app.split(".")[0] for app in django_settings.INSTALLED_APPS}:
        messages.append(
            checks.Error(
                "squidmesh executes steps through django-q2, which is not installed.",
                hint="Add 'django_q' to INSTALLED_APPS.",
                id="squidmesh.E013",
            )
        )
    if Conf.TIMEOUT and Conf.TIMEOUT >= Conf.RETRY:
        messages.append(
            checks.Error(
                f"Q_CLUSTER['timeout'] ({Conf.TIMEOUT}s) is not below Q_CLUSTER['retry'] "
                f"({Conf.RETRY}s): a step still running would be delivered a second time.",
                hint="Set retry to the longest step time plus queue wait, above timeout.",
                id="squidmesh.E013",
            )
        )
    if Conf.ACK_FAILURES:
        messages.append(
            checks.Error(
                "Q_CLUSTER['ack_failures'] is True: a step task that hits an infrastructure "
                "fault (database down) would be dropped instead of redelivered.",
                hint="Remove ack_failures; squidmesh records step failures itself.",
                id="squidmesh.E013",
            )
        )
    if Conf.MAX_ATTEMPTS:
        messages.append(
            checks.Warning(
                f"Q_CLUSTER['max_attempts'] = {Conf.MAX_ATTEMPTS}: django-q2 drops a task after "
                "that many failed deliveries, which can strand a run during a long outage "
                "until the recovery sweep re-sends it (SQUIDMESH['RECOVER_AFTER']).",
                hint="Leave max_attempts at 0; step retries are squidmesh's job.",
                id="squidmesh.W001",
            )
        )
    from squidmesh.runtime.dispatcher import get_dispatcher

    if getattr(get_dispatcher(), "uses_outbox", False) and not settings.RELAY_IN_CLUSTER:
        messages.append(
            checks.Warning(
                "The django-q2 broker cannot join squidmesh's transactions, so dispatches wait "
                "in squidmesh's outbox for a relay, and SQUIDMESH['RELAY_IN_CLUSTER'] is False: "
                "nothing reaches the broker unless `manage.py squidmesh relay` runs.",
                hint="Run `manage.py squidmesh relay` (one or more, anywhere), or set "
                "RELAY_IN_CLUSTER to True so that each qcluster runs a relay.",
                id="squidmesh.W002",
            )
        )
    if Conf.SYNC:
        messages.append(
            checks.Warning(
                "Q_CLUSTER['sync'] is True: steps run inline in the caller and retry/wait "
                "delays are not honoured. Use it for quick experiments only.",
                id="squidmesh.W003",
            )
        )
    return messages


def _maintenance_setting_errors(settings: Any) -> list[checks.CheckMessage]:
    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    after, interval, batch = (
        settings.RECOVER_AFTER,
        settings.RECOVERY_INTERVAL,
        settings.RECOVERY_BATCH,
    )
    problems = []
    if not (whole(after) or isinstance(after, float)) or after <= 0:
        problems.append(("RECOVER_AFTER", "a positive number of seconds", after))
    if interval is not None and (not whole(interval) or interval < 0):
        problems.append(("RECOVERY_INTERVAL", "a whole number of minutes or None", interval))
    if not whole(batch) or batch < 1:
        problems.append(("RECOVERY_BATCH", "a positive integer", batch))
    positive = (
        ("RELAY_POLL", settings.RELAY_POLL),
        ("HEARTBEAT_INTERVAL", settings.HEARTBEAT_INTERVAL),
        ("HEARTBEAT_TIMEOUT", settings.HEARTBEAT_TIMEOUT),
    )
    for name, value in positive:
        if not (whole(value) or isinstance(value, float)) or value <= 0:
            problems.append((name, "a positive number of seconds", value))
    if not whole(settings.RELAY_BATCH) or settings.RELAY_BATCH < 1:
        problems.append(("RELAY_BATCH", "a positive integer", settings.RELAY_BATCH))
    interval, silence = settings.HEARTBEAT_INTERVAL, settings.HEARTBEAT_TIMEOUT
    if (
        all((whole(v) or isinstance(v, float)) and v > 0 for v in (interval, silence))
        and silence < 2 * interval
    ):
        # One late beat (a busy database, a GC pause) must not kill a live attempt.
        problems.append(
            ("HEARTBEAT_TIMEOUT", f"at least twice HEARTBEAT_INTERVAL ({interval!r})", silence)
        )
    depth = settings.MAX_PAYLOAD_DEPTH
    # Above a few hundred levels, JSON encoding itself hits Python's recursion limit.
    if not whole(depth) or not 1 <= depth <= 200:
        problems.append(("MAX_PAYLOAD_DEPTH", "an integer from 1 to 200", depth))
    prune = settings.PRUNE_AFTER_DAYS
    if prune is not None and (not (whole(prune) or isinstance(prune, float)) or prune <= 0):
        problems.append(("PRUNE_AFTER_DAYS", "a positive number of days or None", prune))
    return [
        checks.Error(
            f"SQUIDMESH[{name!r}] must be {expected}, got {value!r}.",
            hint="See docs/reference/settings.md.",
            id="squidmesh.E014",
        )
        for name, expected, value in problems
    ]


@checks.register("squidmesh")
def check_cron_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from django.core.exceptions import ImproperlyConfigured

    from squidmesh.cron_schedules.schedule_rows import activation_setting
    from squidmesh.registry import registry
    from squidmesh.workflow.triggers import CronTrigger

    messages: list[checks.CheckMessage] = []
    with_cron = {
        workflow.name
        for workflow in registry.all()
        if any(isinstance(trigger, CronTrigger) for trigger in workflow.triggers)
    }
    for name in ("CRON_WORKFLOWS", "CRON_EXCLUDE"):
        try:
            names = activation_setting(name)
        except ImproperlyConfigured as error:
            messages.append(checks.Error(str(error), id="squidmesh.E014"))
            continue
        unknown = sorted((names or set()) - with_cron)
        if unknown:
            messages.append(
                checks.Warning(
                    f"SQUIDMESH[{name!r}] names {', '.join(map(repr, unknown))}, which is not "
                    "a registered workflow with a cron trigger.",
                    hint="Check the spelling against `manage.py squidmesh_cron list`.",
                    id="squidmesh.W004",
                )
            )
    return messages

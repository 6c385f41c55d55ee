"""The `SQUIDMESH` settings namespace, read through `squidmesh.conf.settings`."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = ["DEFAULTS", "reload_on_setting_changed", "settings"]

DEFAULTS: dict[str, Any] = {
    # django-q2 cluster (queue) name squidmesh dispatches step tasks to;
    # None means the default cluster of `Q_CLUSTER`.
    "CLUSTER": None,
    # Dotted path of the dispatcher class (see squidmesh.runtime.dispatcher).
    "DISPATCHER": "squidmesh.runtime.dispatcher.DjangoQDispatcher",
    # Seconds added to a step's timeout before a `running` attempt found on
    # redelivery is presumed to belong to a dead worker.
    "INTERRUPTED_GRACE": 5,
    # Attempts of one step that dead workers may leave behind before the step
    # fails as if its retries were exhausted (interruptions do not count
    # against the step's `Retry.max_attempts`).
    "MAX_INTERRUPTIONS": 3,
    # After a step succeeds, run up to this many following steps in the same
    # django-q2 task when they are due at once (no wait): each step still
    # commits before the next starts, with its own timeout, and saves a
    # queue round trip. 0 = one queue task per step (docs/performance.md).
    "INLINE_STEPS": 10,
    # Longest wait a failure's `retry_after` (e.g. HTTP Retry-After) may
    # impose on the next attempt, in seconds; the policy's backoff applies
    # when it is longer.
    "MAX_RETRY_AFTER": 3600,
    # Default and maximum `limit` of `list_runs`.
    "LIST_LIMIT": 50,
    "MAX_LIST_LIMIT": 1000,
    # Keep step output bigger than this many bytes (JSON) out of the context:
    # the step fails terminally instead of bloating every later row read.
    "MAX_STEP_OUTPUT_BYTES": 1_000_000,
    # Deepest nesting of objects and lists a payload may have, the payload
    # object itself counting as one level: deeper payloads are refused with
    # InvalidPayload (a 400 over REST) before any recursive JSON code sees them.
    "MAX_PAYLOAD_DEPTH": 32,
    # REST API permissions (squidmesh.contrib.rest_framework): by default the
    # admin's rule, a staff user holding the run's model permission (view to
    # read; start, cancel or replay to act). See docs/rest-api.md.
    "API_READ_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAdminUser",
        "squidmesh.contrib.rest_framework.permissions.RunModelPermissions",
    ],
    "API_WRITE_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAdminUser",
        "squidmesh.contrib.rest_framework.permissions.RunModelPermissions",
    ],
    # Recovery sweep (squidmesh/recovery.py): an active run with no progress
    # for RECOVER_AFTER seconds whose delivery is overdue gets that delivery
    # queued again. It runs every RECOVERY_INTERVAL minutes on django-q2's
    # scheduler (None = no schedule; run `manage.py squidmesh recover`),
    # looking at up to RECOVERY_BATCH runs per sweep.
    "RECOVER_AFTER": 300,
    "RECOVERY_INTERVAL": 1,
    "RECOVERY_BATCH": 500,
    # Outbox relay (squidmesh/runtime/relay.py), used with brokers that
    # cannot join squidmesh's transactions (Redis, the ORM broker on another
    # alias): seconds between polls of the outbox when nothing is due sooner,
    # messages handed over per transaction, and whether each qcluster runs
    # a relay (False: run `manage.py squidmesh relay` yourself).
    "RELAY_POLL": 0.1,
    "RELAY_BATCH": 100,
    "RELAY_IN_CLUSTER": True,
    # Same brokers: a running attempt's worker gives a heartbeat every
    # HEARTBEAT_INTERVAL seconds; an attempt silent for HEARTBEAT_TIMEOUT
    # seconds is presumed dead and its delivery re-sent (Redis has no lease).
    "HEARTBEAT_INTERVAL": 5,
    "HEARTBEAT_TIMEOUT": 15,
    # Retention: delete runs that ended more than this many days ago (with
    # their steps and attempts, and older failed cron ticks), daily on
    # django-q2's scheduler. None = keep everything (`manage.py squidmesh prune`).
    "PRUNE_AFTER_DAYS": None,
    # Cron activation: None = every registered workflow with cron triggers;
    # a list of workflow names limits activation to those.
    "CRON_WORKFLOWS": None,
    "CRON_EXCLUDE": [],
}

IMPORT_STRINGS = {
    "DISPATCHER",
    "API_READ_PERMISSION_CLASSES",
    "API_WRITE_PERMISSION_CLASSES",
}


class SquidmeshSettings:
    """Lazy view of `settings.SQUIDMESH` merged over `DEFAULTS`.

    Import strings are resolved on first access, with errors naming the
    setting; the cache is dropped on `setting_changed` so
    `override_settings(SQUIDMESH=...)` works in tests.
    """

    def __init__(self) -> None:
        self._cached: dict[str, Any] = {}

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(django_settings, "SQUIDMESH", {}) or {}
        if not isinstance(value, dict):
            raise ImproperlyConfigured("settings.SQUIDMESH must be a dict.")
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in DEFAULTS:
            raise AttributeError(f"Invalid squidmesh setting: {name!r}")
        if name in self._cached:
            return self._cached[name]
        value = self.user_settings.get(name, DEFAULTS[name])
        if name in IMPORT_STRINGS:
            value = _import(value, name)
        self._cached[name] = value
        return value

    def unknown_keys(self) -> list[str]:
        """Return the keys of `settings.SQUIDMESH` that squidmesh does not know."""
        return sorted(set(self.user_settings) - set(DEFAULTS))

    def reload(self) -> None:
        self._cached.clear()


def _import(value: Any, setting_name: str) -> Any:
    if isinstance(value, list | tuple):
        return [_import(item, setting_name) for item in value]
    if not isinstance(value, str):
        return value
    try:
        return import_string(value)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"Could not import {value!r} for setting SQUIDMESH[{setting_name!r}]: {error}"
        ) from error


settings = SquidmeshSettings()


def reload_on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    """Forget the cached settings when a test overrides `SQUIDMESH` (`setting_changed`).

    Connected in `SquidmeshConfig.ready()`.
    """
    if setting == "SQUIDMESH":
        settings.reload()

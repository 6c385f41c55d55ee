"""Request and response shapes of the API, described for the OpenAPI schema and browsable API."""

# Responses are the dicts of `squidmesh.serialization` (the JSON that
# `manage.py squidmesh --json` prints) plus a `url`: serializing those dicts,
# rather than the models, keeps the two surfaces identical by construction.

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from squidmesh.audit import MAX_REASON_LENGTH, EventKind, EventSource
from squidmesh.lifecycle import AttemptStatus, RunStatus, StepStatus

__all__ = [
    "AttemptSerializer",
    "CancelConflictSerializer",
    "CronTriggerSerializer",
    "ErrorSerializer",
    "ReplayConflictSerializer",
    "RunActionSerializer",
    "RunDetailQuerySerializer",
    "RunDetailSerializer",
    "RunEventSerializer",
    "RunFilterSerializer",
    "RunSerializer",
    "RunStartSerializer",
    "StepRunSerializer",
    "WorkflowDefinitionSerializer",
    "WorkflowSerializer",
]

NAMESPACE = "squidmesh_api"
RUN_ID_PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


@extend_schema_field({"type": "object", "additionalProperties": True})
class ObjectField(serializers.JSONField):
    """A JSON object: a payload, a context, an output or an error."""


# Named enum components: three choice sets share the field name "status",
# which drf-spectacular cannot name on its own without a project setting.
@extend_schema_field({"type": "string", "enum": RunStatus.values}, component_name="RunStatus")
class RunStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any):
        super().__init__(RunStatus.choices, **kwargs)


@extend_schema_field({"type": "string", "enum": StepStatus.values}, component_name="StepStatus")
class StepStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any):
        super().__init__(StepStatus.choices, **kwargs)


@extend_schema_field(
    {"type": "string", "enum": AttemptStatus.values}, component_name="AttemptStatus"
)
class AttemptStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any):
        super().__init__(AttemptStatus.choices, **kwargs)


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(read_only=True)
    status = AttemptStatusField(read_only=True)
    error = ObjectField(read_only=True, allow_null=True)
    due_at = serializers.DateTimeField(read_only=True, allow_null=True)
    started_at = serializers.DateTimeField(read_only=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)
    worker = serializers.CharField(read_only=True, help_text="host:pid that ran the attempt.")


class StepRunSerializer(serializers.Serializer):
    step = serializers.CharField(read_only=True)
    position = serializers.IntegerField(
        read_only=True, help_text="Order in which the run reached this step (1-based)."
    )
    status = StepStatusField(read_only=True)
    attempt_count = serializers.IntegerField(read_only=True)
    output = ObjectField(read_only=True, allow_null=True)
    note = ObjectField(read_only=True, allow_null=True)
    last_error = ObjectField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    attempts = AttemptSerializer(many=True, read_only=True)


class RunEventSerializer(serializers.Serializer):
    """An entry of the run's audit trail (`squidmesh.serialization.event_detail`)."""

    kind = serializers.ChoiceField(EventKind.choices, read_only=True)
    actor = serializers.CharField(
        read_only=True, help_text="A username, `cli:<os user>` or `system`."
    )
    # `source` and `data` shadow attributes of DRF's `Field` / `Serializer` in
    # the stubs; the serializer metaclass moves declared fields off the class.
    source = serializers.ChoiceField(EventSource.choices, read_only=True)  # type: ignore[assignment]
    reason = serializers.CharField(read_only=True)
    data = ObjectField(read_only=True)  # type: ignore[assignment]
    created_at = serializers.DateTimeField(read_only=True)


class RunSerializer(serializers.Serializer):
    """A run as listed (`squidmesh.serialization.run_summary`)."""

    url = serializers.SerializerMethodField()
    id = serializers.UUIDField(read_only=True)
    workflow = serializers.CharField(read_only=True)
    trigger = serializers.CharField(read_only=True)
    status = RunStatusField(read_only=True)
    current_step = serializers.CharField(read_only=True, allow_null=True)
    idempotency_key = serializers.CharField(read_only=True, allow_null=True)
    replayed_from = serializers.UUIDField(
        read_only=True, allow_null=True, help_text="Id of the run this run replays."
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    scheduled_for = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the next delayed delivery (a wait or a retry) is due.",
    )
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, run: dict[str, Any]) -> str:
        # reverse() costs more than the rest of a row together; a page of
        # runs reverses once and fills in each (URL-safe) uuid.
        template = self.context.get("run_url_template")
        if template is None:
            # The context is a dict at run time (a `Mapping` in the stubs).
            template = self.context["run_url_template"] = reverse(  # type: ignore[index]
                f"{NAMESPACE}:run-detail",
                kwargs={"pk": RUN_ID_PLACEHOLDER},
                request=self.context.get("request"),
            )
        return template.replace(RUN_ID_PLACEHOLDER, run["id"])


class RunDetailSerializer(RunSerializer):
    """A run with its payload, context and, on request, its history (`run_detail`)."""

    payload = ObjectField(read_only=True)
    context = ObjectField(read_only=True)  # type: ignore[assignment]  # see RunEventSerializer
    last_error = ObjectField(read_only=True, allow_null=True)
    history = StepRunSerializer(
        many=True,
        read_only=True,
        allow_null=True,
        help_text="Step runs in execution order with their attempts; null unless requested.",
    )
    events = RunEventSerializer(
        many=True,
        read_only=True,
        allow_null=True,
        help_text="The audit trail (who started, cancelled or replayed the run), oldest "
        "first; null unless the history is requested.",
    )


@extend_schema_field({"type": "object", "additionalProperties": True})
class PayloadField(serializers.JSONField):
    """A payload as the client sent it: a JSON object, checked by `start_run` alone.

    DRF's `JSONField` re-encodes a value to check it, which recursion-errors
    on deep nesting; `start_run` measures the depth without recursing and
    names the bad field, so the API and the Python API refuse the same
    payloads with the same messages.
    """

    default_error_messages = {
        **serializers.JSONField.default_error_messages,
        "not_object": "Expected a JSON object of payload fields.",
        # As `start_run(workflow, None)` refuses it; leave the field out for {}.
        "null": "Expected a JSON object of payload fields, not null.",
    }

    def to_internal_value(self, data: Any) -> Any:
        if getattr(data, "is_json_string", False):  # the browsable API's form
            try:
                data = json.loads(data)
            except (TypeError, ValueError, RecursionError):
                self.fail("invalid")
        if not isinstance(data, dict):
            self.fail("not_object")
        return data


class StrictSerializer(serializers.Serializer):
    """A request body serializer that refuses fields it does not declare.

    A misspelt optional field (`"paylod"`, `"idempotency-key"`) would
    otherwise be dropped silently and the request served on defaults.
    """

    #: Sent by the browsable API's HTML form; not a field of the request.
    FORM_KEYS = frozenset({"csrfmiddlewaretoken"})

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = (
            sorted(set(data) - set(self.fields) - self.FORM_KEYS) if isinstance(data, dict) else []
        )
        errors: dict[str, Any] = {name: ["Unknown field."] for name in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            if not isinstance(error.detail, dict):
                raise
            errors = {**error.detail, **errors}
        if errors:
            raise serializers.ValidationError(errors)
        return value


REASON_HELP = "Why, kept with your username in the run's events."


class RunActionSerializer(StrictSerializer):
    """The body of a cancel or replay: none, an empty JSON object, or a reason."""

    reason = serializers.CharField(
        max_length=MAX_REASON_LENGTH, required=False, allow_blank=True, help_text=REASON_HELP
    )


class RunStartSerializer(StrictSerializer):
    """Start a run: `squidmesh.start_run(workflow, payload, trigger=..., idempotency_key=...)`."""

    workflow = serializers.CharField(max_length=200, help_text="Registered workflow name.")
    trigger = serializers.CharField(
        max_length=100,
        required=False,
        allow_null=True,
        help_text="Trigger name; the workflow's default trigger when omitted.",
    )
    payload = PayloadField(
        required=False,
        help_text="Payload validated against the trigger's contract (undeclared fields are "
        "refused); {} when omitted.",
    )
    idempotency_key = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        help_text="A second start with the same key and workflow returns the first run (200).",
    )
    reason = serializers.CharField(
        max_length=MAX_REASON_LENGTH, required=False, allow_blank=True, help_text=REASON_HELP
    )


class QuerySerializer(serializers.Serializer):
    """Query parameters, where an empty value (`?workflow=`) is a 400, not "no filter".

    DRF reads an empty query value of an optional field as absent, which
    contradicts the schema's `minLength` and hides a client's mistake.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        blank: dict[str, list[str]] = {
            name: ["This field may not be blank."]
            # Not `for name in self.fields`: the stubs type that as fields.
            for name, _field in self.fields.items()
            if hasattr(data, "get") and data.get(name) == ""
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


class RunFilterSerializer(QuerySerializer):
    """Query parameters of the run list."""

    workflow = serializers.CharField(required=False, help_text="Registered workflow name.")
    status = RunStatusField(required=False)
    trigger = serializers.CharField(required=False, help_text="Trigger name.")
    created_after = serializers.DateTimeField(
        required=False, help_text="Runs created at or after this ISO-8601 time."
    )
    created_before = serializers.DateTimeField(
        required=False, help_text="Runs created strictly before this ISO-8601 time."
    )

    # The bounds are checked together by `squidmesh.api.filter_runs`, which the
    # view calls: one check for the API, the command and REST.


class RunDetailQuerySerializer(QuerySerializer):
    history = serializers.BooleanField(
        required=False, default=False, help_text="Include the step runs and their attempts."
    )


class WorkflowSerializer(serializers.Serializer):
    """A registered workflow as listed (`squidmesh.serialization.workflow_summary`)."""

    url = serializers.SerializerMethodField()
    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    entry_step = serializers.CharField(read_only=True)
    triggers = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Trigger names."
    )
    steps = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Step names in execution order."
    )

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, workflow: dict[str, Any]) -> str:
        return reverse(
            f"{NAMESPACE}:workflow-detail",
            kwargs={"name": workflow["name"]},
            request=self.context.get("request"),
        )


class WorkflowDefinitionSerializer(WorkflowSerializer):
    """A workflow's full definition (`Workflow.describe()`) plus its `url`."""

    triggers = serializers.ListField(
        child=ObjectField(),
        read_only=True,
        help_text="Each trigger: name, type (manual/cron), default, payload fields "
        "(name, type, required, default, help_text, choices); cron triggers add "
        "expression and timezone.",
    )
    steps = serializers.ListField(
        child=ObjectField(),
        read_only=True,
        help_text="Each step in execution order: name, kind (task/wait/log), target, "
        "on_ok, on_error, retry, timeout, description; waits add duration, logs add "
        "message and level.",
    )

    def to_representation(self, instance: dict[str, Any]) -> dict[str, Any]:
        # Pass the definition through whole: keys added to `describe()` later
        # reach clients without a change here.
        return {"url": self.get_url(instance), **instance}


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(read_only=True)


# Response-only shapes, declared writable so that the schema marks exactly
# the keys each response always has as required (drf-spectacular makes every
# read-only field required).
class CancelConflictSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the run cannot be cancelled.")
    status = RunStatusField(help_text="The run's status, which has ended.")


class ReplayConflictSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="Why the run cannot be replayed.")
    payload = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Payload field errors, when the stored payload no longer fits the contract.",
    )


class CronRunSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    status = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class CronTriggerSerializer(serializers.Serializer):
    """A cron trigger with its schedule (`squidmesh.cron_schedules.cron_triggers`)."""

    workflow = serializers.CharField(read_only=True)
    trigger = serializers.CharField(read_only=True)
    expression = serializers.CharField(read_only=True, allow_null=True)
    timezone = serializers.CharField(read_only=True, allow_null=True)
    state = serializers.CharField(
        read_only=True,
        help_text="active, missing, outdated, disabled, invalid or orphaned (docs/cron.md).",
    )
    schedule_id = serializers.IntegerField(read_only=True, allow_null=True)
    next_fire_time = serializers.DateTimeField(read_only=True, allow_null=True)
    last_runs = serializers.ListField(child=serializers.DictField(), read_only=True)
    last_failure = serializers.DictField(read_only=True, allow_null=True)

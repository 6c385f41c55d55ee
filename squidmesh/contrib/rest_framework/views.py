"""Viewsets of the API; every change goes through `squidmesh.api`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import parsers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from squidmesh import api
from squidmesh.audit import EventSource
from squidmesh.contrib.rest_framework.exceptions import (
    Conflict,
    RequestTooLarge,
    payload_errors,
)
from squidmesh.contrib.rest_framework.pagination import RunCursorPagination
from squidmesh.contrib.rest_framework.parsers import JSONParser
from squidmesh.contrib.rest_framework.permissions import permissions_for
from squidmesh.contrib.rest_framework.schema import document
from squidmesh.contrib.rest_framework.serializers import (
    CancelConflictSerializer,
    CronTriggerSerializer,
    ErrorSerializer,
    ReplayConflictSerializer,
    RunActionSerializer,
    RunDetailQuerySerializer,
    RunDetailSerializer,
    RunFilterSerializer,
    RunSerializer,
    RunStartSerializer,
    WorkflowDefinitionSerializer,
    WorkflowSerializer,
)
from squidmesh.exceptions import (
    InvalidArgument,
    InvalidFilter,
    InvalidPayload,
    InvalidTransition,
    RunNotFound,
    UnknownTrigger,
    UnknownWorkflow,
)
from squidmesh.models import WorkflowRun
from squidmesh.registry import registry
from squidmesh.serialization import run_detail, run_summary, workflow_summary

__all__ = ["CronTriggerViewSet", "RunViewSet", "WorkflowViewSet"]

NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such run or workflow.")
DENIED = OpenApiResponse(ErrorSerializer, description="Not authenticated or not permitted.")
INVALID = OpenApiResponse(
    OpenApiTypes.OBJECT, description="Field errors: `{field: [message, ...]}`."
)
TOO_LARGE = OpenApiResponse(
    ErrorSerializer, description="The body exceeds the project's DATA_UPLOAD_MAX_MEMORY_SIZE."
)
RUN_ID = OpenApiParameter(
    "id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The run's id."
)
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="1 to 255 characters. A second request with the same key returns the run "
    "the first one started (200) instead of starting another.",
)


if TYPE_CHECKING:
    from rest_framework.views import APIView

    # The mixin is only ever mixed into DRF views: check it as one.
    _ViewBase = APIView
else:
    _ViewBase = object


class SquidmeshViewSetMixin(_ViewBase):
    """Permissions from `SQUIDMESH['API_*_PERMISSION_CLASSES']`; schema by drf-spectacular.

    The schema class is set here so the schema works whatever
    `DEFAULT_SCHEMA_CLASS` the project uses.
    """

    schema = AutoSchema()

    def get_permissions(self):
        return permissions_for(self.request)

    def get_parsers(self):
        # Keep the project's parsers; only DRF's own JSON parser is swapped
        # for one that answers 400 to a body nested too deeply to decode.
        return [
            JSONParser() if type(parser) is parsers.JSONParser else parser
            for parser in super().get_parsers()
        ]

    def handle_exception(self, exc):
        # Django raises RequestDataTooBig when the body is read; unhandled it
        # becomes Django's HTML 400 page instead of a JSON answer.
        if isinstance(exc, RequestDataTooBig):
            exc = RequestTooLarge()
        elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            exc = ParseError(f"{exc} (DATA_UPLOAD_MAX_NUMBER_FIELDS / _FILES).")
        return super().handle_exception(exc)


class WorkflowViewSet(SquidmeshViewSetMixin, viewsets.ViewSet):
    """Workflows registered in this process, with their definitions."""

    lookup_field = "name"
    # Workflow names contain dots ("shop.order_fulfilment").
    lookup_value_regex = "[^/]+"
    serializer_class = WorkflowSerializer

    @document(
        summary="List registered workflows",
        description="Workflows registered in the serving process, sorted by name.",
        responses={200: WorkflowSerializer(many=True), 403: DENIED},
    )
    def list(self, request: Request) -> Response:
        workflows = [workflow_summary(workflow) for workflow in registry.all()]
        serializer = WorkflowSerializer(workflows, many=True, context={"request": request})
        return Response(serializer.data)

    @document(
        summary="Describe a workflow",
        description="The definition: triggers with their payload contracts, steps in "
        "execution order with transitions, retry policies and timeouts.",
        responses={200: WorkflowDefinitionSerializer, 403: DENIED, 404: NOT_FOUND},
    )
    def retrieve(self, request: Request, name: str) -> Response:
        try:
            workflow = registry.get(name)
        except UnknownWorkflow as error:
            raise NotFound(str(error)) from None
        serializer = WorkflowDefinitionSerializer(workflow.describe(), context={"request": request})
        return Response(serializer.data)


class CronTriggerViewSet(SquidmeshViewSetMixin, viewsets.ViewSet):
    """Cron triggers of the registered workflows with their django-q2 schedules."""

    serializer_class = CronTriggerSerializer

    @document(
        summary="List cron triggers",
        description="Each cron trigger with its schedule state, next fire time, last runs "
        "and last failed tick; `?workflow=` narrows to one workflow.",
        parameters=[OpenApiParameter("workflow", OpenApiTypes.STR, OpenApiParameter.QUERY)],
        responses={200: CronTriggerSerializer(many=True), 403: DENIED},
    )
    def list(self, request: Request) -> Response:
        from squidmesh.cron_schedules.read_model import cron_triggers

        workflow = request.query_params.get("workflow")
        triggers = [
            info.as_dict()
            for info in cron_triggers()
            if workflow is None or info.workflow == workflow
        ]
        return Response(CronTriggerSerializer(triggers, many=True).data)


class RunViewSet(SquidmeshViewSetMixin, viewsets.GenericViewSet):
    """Workflow runs: list, inspect, start, cancel and replay."""

    # Any string reaches the API, which answers RunNotFound (a 404) for a
    # malformed id as for a missing one.
    lookup_value_regex = "[^/]+"
    pagination_class = RunCursorPagination
    serializer_class = RunSerializer

    def get_queryset(self):
        # The list reads none of the JSON columns (`run_summary`), so they
        # stay in the database.
        return WorkflowRun.objects.newest_first().defer("payload", "context", "last_error")

    def get_serializer_class(self):
        # A POST to the list route starts a run; the browsable API's form and
        # OPTIONS describe it under other actions than "create".
        if not self.detail and self.request is not None and self.request.method == "POST":
            return RunStartSerializer
        return RunSerializer

    @document(
        summary="List runs, newest first",
        description="Cursor-paginated: follow `next` and `previous`; there is no total count.",
        parameters=[RunFilterSerializer],
        responses={200: RunSerializer(many=True), 400: INVALID, 403: DENIED},
    )
    def list(self, request: Request) -> Response:
        filters = RunFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(
            self.filter_runs(self.get_queryset(), **filters.validated_data)
        )
        assert page is not None  # `pagination_class` is set, so there is always a page
        serializer = RunSerializer(
            [run_summary(run) for run in page], many=True, context={"request": request}
        )
        return self.get_paginated_response(serializer.data)

    @staticmethod
    def filter_runs(queryset, **filters: Any):
        try:
            return api.filter_runs(queryset, **filters)
        except InvalidFilter as error:
            raise ValidationError({error.field or "non_field_errors": [str(error)]}) from None

    @document(
        summary="Inspect a run",
        description="With `?history=true`, `history` lists the step runs in execution "
        "order, each with its attempts.",
        parameters=[RUN_ID, RunDetailQuerySerializer],
        responses={200: RunDetailSerializer, 400: INVALID, 403: DENIED, 404: NOT_FOUND},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        options = RunDetailQuerySerializer(data=request.query_params)
        options.is_valid(raise_exception=True)
        history = options.validated_data["history"]
        run = self.get_run(pk, include_history=history)
        return self.run_response(run, include_history=history)

    @document(
        summary="Start a run",
        description="Validate the payload against the trigger's contract and start a run "
        "(status `pending`). Nothing is stored when the request is refused. The idempotency "
        "key may come in the body or the `Idempotency-Key` header; both must then agree.",
        parameters=[IDEMPOTENCY_KEY],
        request=RunStartSerializer,
        responses={
            201: OpenApiResponse(RunDetailSerializer, description="The run was started."),
            200: OpenApiResponse(
                RunDetailSerializer,
                description="The idempotency key matched a run started earlier; that run.",
            ),
            400: INVALID,
            403: DENIED,
            413: TOO_LARGE,
        },
    )
    def create(self, request: Request) -> Response:
        serializer = RunStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = self.idempotency_key(request, body=data.get("idempotency_key"))
        try:
            started = api.start_run_once(
                data["workflow"],
                data.get("payload", {}),
                trigger=data.get("trigger"),
                idempotency_key=key,
                actor=request.user,
                source=EventSource.REST,
                reason=data.get("reason") or None,
            )
        except UnknownWorkflow as error:
            raise ValidationError({"workflow": [str(error)]}) from None
        except UnknownTrigger as error:
            raise ValidationError({"trigger": [str(error)]}) from None
        except InvalidPayload as error:
            raise ValidationError({"payload": payload_errors(error)}) from None
        except InvalidArgument as error:
            raise ValidationError({error.field or "idempotency_key": [str(error)]}) from None
        # The earlier run when the idempotency key matched one.
        return self.run_response(
            started.run,
            code=status.HTTP_201_CREATED if started.started_now else status.HTTP_200_OK,
        )

    @document(
        summary="Cancel a run",
        description="A pending or waiting run becomes `cancelled`; a run whose step is "
        "executing becomes `cancelling` and then `cancelled` without advancing.",
        operation_id="runs_cancel",
        parameters=[RUN_ID],
        request=RunActionSerializer,
        responses={
            200: OpenApiResponse(
                RunDetailSerializer, description="The run, now cancelled or cancelling."
            ),
            400: INVALID,
            403: DENIED,
            404: NOT_FOUND,
            409: OpenApiResponse(CancelConflictSerializer, description="The run already ended."),
            413: TOO_LARGE,
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        reason = self.action_reason(request)
        self.get_run(pk)
        try:
            run = api.cancel_run(pk, actor=request.user, source=EventSource.REST, reason=reason)
        except RunNotFound as error:
            raise NotFound(str(error)) from None
        except InvalidTransition as error:
            raise Conflict({"detail": str(error), "status": error.status}) from None
        return self.run_response(run)

    @document(
        summary="Replay a run",
        description="Start a new run with the source run's workflow, trigger and payload, "
        "linked through `replayed_from`. The source run is untouched. With an "
        "`Idempotency-Key` header, a repeated request returns the replay the first one "
        "started (200), so a double submit starts one run.",
        operation_id="runs_replay",
        parameters=[RUN_ID, IDEMPOTENCY_KEY],
        request=RunActionSerializer,
        responses={
            201: OpenApiResponse(RunDetailSerializer, description="The new run."),
            200: OpenApiResponse(
                RunDetailSerializer,
                description="The idempotency key matched a replay started earlier; that run.",
            ),
            400: INVALID,
            403: DENIED,
            404: NOT_FOUND,
            413: TOO_LARGE,
            409: OpenApiResponse(
                ReplayConflictSerializer,
                description="The workflow is no longer registered, or its trigger or "
                "payload contract changed so the source run's payload no longer fits.",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str) -> Response:
        reason = self.action_reason(request)
        self.get_run(pk)
        key = self.idempotency_key(request)
        try:
            started = api.replay_run_once(
                pk, idempotency_key=key, actor=request.user, source=EventSource.REST, reason=reason
            )
        except RunNotFound as error:
            raise NotFound(str(error)) from None
        except InvalidArgument as error:
            raise ValidationError({IDEMPOTENCY_HEADER: [str(error)]}) from None
        except (UnknownWorkflow, UnknownTrigger) as error:
            raise Conflict({"detail": str(error)}) from None
        except InvalidPayload as error:
            raise Conflict({"detail": str(error), "payload": payload_errors(error)}) from None
        return self.run_response(
            started.run,
            code=status.HTTP_201_CREATED if started.started_now else status.HTTP_200_OK,
        )

    @staticmethod
    def idempotency_key(request: Request, *, body: str | None = None) -> str | None:
        """Return the request's idempotency key: the header, or the body's `idempotency_key`.

        Both may be given only with the same value; a mismatch is a 400, as
        guessing which one the client meant could start a duplicate run.
        """
        header = request.headers.get(IDEMPOTENCY_HEADER)
        if header is None:
            return body
        if not 0 < len(header) <= 255:
            raise ValidationError({IDEMPOTENCY_HEADER: ["Must be 1 to 255 characters."]})
        if body is not None and body != header:
            raise ValidationError(
                {
                    "idempotency_key": [
                        f"Differs from the {IDEMPOTENCY_HEADER} header; send one, or the same "
                        "value in both."
                    ]
                }
            )
        return header

    @staticmethod
    def action_reason(request: Request) -> str | None:
        """Return the reason a cancel or replay body gives; refuse any other field (400)."""
        if not request.data:
            return None
        serializer = RunActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data.get("reason") or None

    def get_run(self, run_id: str, *, include_history: bool = False) -> WorkflowRun:
        """Return the run for the URL, after the object-level permission checks."""
        try:
            run = api.inspect_run(run_id, include_history=include_history)
        except RunNotFound as error:
            raise NotFound(str(error)) from None
        self.check_object_permissions(self.request, run)
        return run

    def run_response(
        self, run: WorkflowRun, *, include_history: bool = False, code: int = status.HTTP_200_OK
    ) -> Response:
        data: dict[str, Any] = RunDetailSerializer(
            run_detail(run, include_history=include_history), context={"request": self.request}
        ).data
        headers = {"Location": data["url"]} if code == status.HTTP_201_CREATED else None
        return Response(data, status=code, headers=headers)

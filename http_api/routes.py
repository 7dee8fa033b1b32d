"""Every HTTP route, once: the table registers the functions (`http`) and the OpenAPI document
is built from it (http_api.openapi), so the two cannot drift.

A route names its function, method, path, typed query parameters (read by handlers through
the same `Param`, http_api.params), body and answers. Bodies and answers name their pydantic
models as "module:Name" (`model` imports one), so that importing the table, which every HTTP
function module does, builds no model: the document imports them when it is first built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import azure.durable_functions as df
import azure.functions as func

from http_api.params import (
    AVAILABLE_ONLY,
    DEFINITION_ID,
    MODEL_ID,
    PAGE,
    REFRESH,
    RUN_STATUS,
    TRANSCRIPT_STATUS,
    Param,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


# Ids are Table Storage keys: no '/', '\\', '#', '?' or control characters (and never empty).
ID_SCHEMA: Mapping[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[^/\\\\#?\\u0000-\\u001f\\u007f-\\u009f]+$",
}


@dataclass(frozen=True)
class Route:
    function: str
    method: str
    path: str
    summary: str
    ok: int
    response: str | None = None
    body: str | None = None
    listing: bool = False
    query: tuple[Param, ...] = ()
    errors: tuple[int, ...] = field(default=(400,))
    # The 202 answer of a route whose work may go on in the background, with `Location`.
    accepted: str | None = None
    # A `Location` header on the `ok` answer (a created resource, or a redirect).
    location: bool = False
    # Open without a function key (AuthLevel.ANONYMOUS): `security: []` in the document.
    anonymous: bool = False
    # Reads no storage (so never answers 503).
    stateless: bool = False

    @property
    def route(self) -> str:
        """The Functions route template: the path without the `api/` prefix."""
        return self.path.removeprefix("/api/")


ROUTES = (
    Route(
        "models_list",
        "get",
        "/api/models",
        "List models",
        200,
        "evalruns.services.catalog:ModelListing",
        listing=True,
        query=(AVAILABLE_ONLY,),
    ),
    Route(
        "definitions_create",
        "post",
        "/api/definitions",
        "Create a definition",
        201,
        "evalruns.domain.definitions:Definition",
        "evalruns.domain.definitions:DefinitionInput",
        location=True,
    ),
    Route(
        "definitions_list",
        "get",
        "/api/definitions",
        "List definitions, newest first",
        200,
        "evalruns.domain.definitions:Definition",
        listing=True,
        query=PAGE,
    ),
    Route(
        "definitions_get",
        "get",
        "/api/definitions/{definitionId}",
        "Get a definition",
        200,
        "evalruns.domain.definitions:Definition",
        errors=(404,),
    ),
    Route(
        "definitions_scenarios",
        "get",
        "/api/definitions/{definitionId}/scenarios",
        "Expand scenarios",
        200,
        "evalruns.domain.expansion:Scenario",
        listing=True,
        query=PAGE,
        errors=(400, 404),
    ),
    Route(
        "runs_create",
        "post",
        "/api/runs",
        "Start a run",
        202,
        "evalruns.domain.runs:RunStarted",
        "evalruns.domain.runs:RunRequest",
        errors=(400, 404),
        location=True,
    ),
    Route(
        "runs_list",
        "get",
        "/api/runs",
        "List runs, newest first",
        200,
        "evalruns.domain.runs:Run",
        listing=True,
        query=(RUN_STATUS, DEFINITION_ID, *PAGE),
    ),
    Route(
        "runs_get",
        "get",
        "/api/runs/{runId}",
        "Get a run with live progress",
        200,
        "evalruns.domain.runs:Run",
        errors=(404,),
    ),
    Route(
        "runs_estimate",
        "post",
        "/api/runs/estimate",
        "Estimate a run's jobs, tokens and cost",
        200,
        "evalruns.services.estimates:Estimate",
        "evalruns.domain.runs:RunRequest",
        errors=(400, 404),
    ),
    Route(
        "runs_patch",
        "patch",
        "/api/runs/{runId}",
        "Change a run's budget or name",
        200,
        "evalruns.domain.runs:Run",
        "evalruns.domain.runs:RunPatch",
        errors=(400, 404, 409),
    ),
    Route(
        "runs_pause",
        "post",
        "/api/runs/{runId}/pause",
        "Pause a run",
        202,
        "evalruns.domain.runs:Run",
        errors=(404, 409),
    ),
    Route(
        "runs_resume",
        "post",
        "/api/runs/{runId}/resume",
        "Resume a paused run",
        202,
        "evalruns.domain.runs:Run",
        errors=(404, 409),
    ),
    Route(
        "runs_cancel",
        "post",
        "/api/runs/{runId}/cancel",
        "Cancel a run",
        202,
        "evalruns.domain.runs:Run",
        errors=(404, 409),
    ),
    Route(
        "runs_rerun",
        "post",
        "/api/runs/{runId}/rerun",
        "Re-run a run (lineage kept)",
        202,
        "evalruns.domain.runs:RunStarted",
        "evalruns.domain.runs:RerunRequest",
        errors=(400, 404),
        location=True,
    ),
    Route(
        "transcripts_list",
        "get",
        "/api/runs/{runId}/transcripts",
        "List transcripts in key order (model, scenario, sample)",
        200,
        "evalruns.domain.transcripts:TranscriptSummary",
        listing=True,
        query=(MODEL_ID, TRANSCRIPT_STATUS, *PAGE),
        errors=(400, 404),
    ),
    Route(
        "transcripts_get",
        "get",
        "/api/runs/{runId}/transcripts/{transcriptId}",
        "Get a transcript",
        200,
        "evalruns.domain.transcripts:Transcript",
        errors=(404,),
    ),
    Route(
        "exports_create",
        "post",
        "/api/runs/{runId}/exports",
        "Export as CSV (201 with the link; 202 while a large export is written)",
        201,
        "evalruns.exports.service:ExportLink",
        "evalruns.exports.background:ExportRequest",
        errors=(400, 404),
        accepted="evalruns.exports.background:ExportStatus",
    ),
    Route(
        "exports_status",
        "get",
        "/api/runs/{runId}/exports/{exportId}",
        "An export's status; once succeeded, its link",
        200,
        "evalruns.exports.background:ExportStatus",
        errors=(404,),
    ),
    Route(
        "exports_download",
        "get",
        "/api/runs/{runId}/export.csv",
        "Download the CSV (302 to a SAS link; 202 while it is written in the background)",
        302,
        errors=(404,),
        accepted="evalruns.exports.background:ExportStatus",
        location=True,
    ),
    Route(
        "openapi_document",
        "get",
        "/api/openapi.json",
        "This document",
        200,
        errors=(),
        anonymous=True,
        stateless=True,
    ),
    Route(
        "health",
        "get",
        "/api/health",
        "Overall health; a 503 problem with the checks when storage is unreachable",
        200,
        "evalruns.services.health:HealthReport",
        errors=(),
        anonymous=True,
    ),
    Route(
        "health_providers",
        "get",
        "/api/health/providers",
        "Provider checks, cached 5 minutes unless refresh=true",
        200,
        "evalruns.services.health:ProviderHealthReport",
        query=(REFRESH,),
        anonymous=True,
        stateless=True,
    ),
    Route(
        "health_queue",
        "get",
        "/api/health/queue",
        "Orchestration instances by runtime status, and records that disagree with them",
        200,
        "evalruns.services.health:QueueHealth",
        errors=(),
    ),
    Route(
        "health_workers",
        "get",
        "/api/health/workers",
        "Runtime, package versions, provider variables set, warnings",
        200,
        "evalruns.services.health:WorkerHealth",
        errors=(),
        stateless=True,
    ),
)

BY_FUNCTION = {route.function: route for route in ROUTES}


def model(ref: str) -> type[BaseModel]:
    """The model a route names as "module:Name"."""
    module, _, name = ref.partition(":")
    found: type[BaseModel] = getattr(importlib.import_module(module), name)
    return found


def http(bp: df.Blueprint) -> Callable[[F], F]:
    """Register the decorated function as the route of the same name in ROUTES."""

    def register(function: F) -> F:
        # Beneath other binding decorators, `function` is already their FunctionBuilder.
        built = getattr(function, "_function", None)
        name = built.get_function_name() if built is not None else function.__name__
        route = BY_FUNCTION[name]
        level = func.AuthLevel.ANONYMOUS if route.anonymous else func.AuthLevel.FUNCTION
        registered: F = bp.route(
            route=route.route, methods=[route.method.upper()], auth_level=level
        )(function)
        return registered

    return register

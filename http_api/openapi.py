"""GET /api/openapi.json: an OpenAPI 3.1 document built from the same pydantic models that
validate requests. The route table here is checked against the registered functions by a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from evalruns.domain.definitions import Definition, DefinitionInput
from evalruns.domain.expansion import Scenario
from evalruns.domain.runs import RerunRequest, Run, RunPatch, RunRequest
from evalruns.domain.transcripts import Transcript, TranscriptSummary
from evalruns.exports.background import ExportStatus
from evalruns.exports.service import ExportLink
from evalruns.services.catalog import ModelListing
from evalruns.services.estimates import Estimate
from evalruns.services.health import (
    HealthReport,
    ProviderHealthReport,
    QueueHealth,
    WorkerHealth,
)
from http_api.exports import ExportRequest
from http_api.problems import api_errors
from http_api.requests import json_response

bp = df.Blueprint(http_auth_level=func.AuthLevel.ANONYMOUS)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    ok: int
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    listing: bool = False
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = field(default=(400,))
    # Routes open without a function key (AuthLevel.ANONYMOUS) say so with `security: []`.
    anonymous: bool = False
    # Work that goes on in the background: 202 with this body and a `Location` to watch it.
    accepted: type[BaseModel] | None = None


ROUTES = (
    Route(
        "get",
        "/api/models",
        "List models",
        200,
        ModelListing,
        listing=True,
        query=("availableOnly",),
    ),
    Route("post", "/api/definitions", "Create a definition", 201, Definition, DefinitionInput),
    Route(
        "get",
        "/api/definitions",
        "List definitions",
        200,
        Definition,
        listing=True,
        query=("limit", "cursor"),
    ),
    Route(
        "get", "/api/definitions/{definitionId}", "Get a definition", 200, Definition, errors=(404,)
    ),
    Route(
        "get",
        "/api/definitions/{definitionId}/scenarios",
        "Expand scenarios",
        200,
        Scenario,
        listing=True,
        query=("limit", "cursor"),
        errors=(400, 404),
    ),
    Route("post", "/api/runs", "Start a run", 202, Run, RunRequest, errors=(400, 404, 503)),
    Route(
        "get",
        "/api/runs",
        "List runs, newest first",
        200,
        Run,
        listing=True,
        query=("status", "definitionId", "limit", "cursor"),
    ),
    Route("get", "/api/runs/{runId}", "Get a run with live progress", 200, Run, errors=(404,)),
    Route(
        "post",
        "/api/runs/estimate",
        "Estimate a run's jobs, tokens and cost",
        200,
        Estimate,
        RunRequest,
        errors=(400, 404),
    ),
    Route(
        "patch",
        "/api/runs/{runId}",
        "Change a run's budget or name",
        200,
        Run,
        RunPatch,
        errors=(400, 404, 409),
    ),
    Route("post", "/api/runs/{runId}/pause", "Pause a run", 202, Run, errors=(404, 409)),
    Route("post", "/api/runs/{runId}/resume", "Resume a paused run", 202, Run, errors=(404, 409)),
    Route("post", "/api/runs/{runId}/cancel", "Cancel a run", 202, Run, errors=(404, 409)),
    Route(
        "post",
        "/api/runs/{runId}/rerun",
        "Re-run a run (lineage kept)",
        202,
        Run,
        RerunRequest,
        errors=(400, 404, 503),
    ),
    Route(
        "get",
        "/api/runs/{runId}/transcripts",
        "List transcripts",
        200,
        TranscriptSummary,
        listing=True,
        query=("modelId", "status", "limit", "cursor"),
        errors=(400, 404),
    ),
    Route(
        "get",
        "/api/runs/{runId}/transcripts/{transcriptId}",
        "Get a transcript",
        200,
        Transcript,
        errors=(404,),
    ),
    Route(
        "post",
        "/api/runs/{runId}/exports",
        "Export as CSV (202 when it goes on in the background)",
        201,
        ExportLink,
        ExportRequest,
        errors=(400, 404),
        accepted=ExportStatus,
    ),
    Route(
        "get",
        "/api/runs/{runId}/exports/{exportId}",
        "An export's status; once succeeded, its link",
        200,
        ExportStatus,
        errors=(404,),
    ),
    Route(
        "get",
        "/api/runs/{runId}/export.csv",
        "Download the CSV (302 to a SAS link; 202 while it is written in the background)",
        302,
        errors=(404,),
        accepted=ExportStatus,
    ),
    Route("get", "/api/openapi.json", "This document", 200, anonymous=True),
    Route(
        "get",
        "/api/health",
        "Overall health (anonymous); 503 problem with the checks when storage is unreachable",
        200,
        HealthReport,
        errors=(503,),
        anonymous=True,
    ),
    Route(
        "get",
        "/api/health/providers",
        "Provider checks, cached 5 minutes unless refresh=true (anonymous)",
        200,
        ProviderHealthReport,
        query=("refresh",),
        anonymous=True,
    ),
    Route(
        "get",
        "/api/health/queue",
        "Orchestration instances by runtime status",
        200,
        QueueHealth,
        errors=(),
    ),
    Route(
        "get",
        "/api/health/workers",
        "Runtime, package versions, provider variables set, warnings",
        200,
        WorkerHealth,
        errors=(),
    ),
)


# The level is given on the route: the app's FUNCTION default overrides the blueprint's.
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@api_errors
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(build_document())


@cache
def build_document() -> dict[str, Any]:
    models = {
        model for route in ROUTES for model in (route.response, route.body, route.accepted) if model
    }
    _, schemas = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
        by_alias=True,
    )
    components = schemas.get("$defs", {})
    components["Problem"] = _PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "evalruns",
            "version": "1.0.0",
            "description": "LLM evaluation runs on Azure Durable Functions.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
            },
        },
        "security": [{"functionKey": []}],
    }


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_names(route.path)
    ] + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in route.query]
    responses: dict[str, Any] = {str(route.ok): {"description": route.summary}}
    if route.response is not None:
        ref = {"$ref": f"#/components/schemas/{route.response.__name__}"}
        schema = (
            {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": ref},
                    "nextCursor": {"type": ["string", "null"]},
                },
            }
            if route.listing
            else ref
        )
        responses[str(route.ok)]["content"] = {"application/json": {"schema": schema}}
    if route.accepted is not None:
        responses["202"] = {
            "description": "going on in the background",
            "headers": {"Location": {"schema": {"type": "string"}}},
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.accepted.__name__}"}
                }
            },
        }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for status in route.errors:
        responses[str(status)] = {"description": "problem", "content": problem}
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": f"{route.method}{route.path}".replace("/", "_")
        .replace("{", "")
        .replace("}", "")
        .replace(".", "_"),
        "parameters": parameters,
        "responses": responses,
    }
    if route.anonymous:
        operation["security"] = []
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{route.body.__name__}"}
                }
            },
        }
    return operation


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
}

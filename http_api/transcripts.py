"""Transcripts of a run: the list view and one whole conversation."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.transcripts import TranscriptStatus
from evalruns.errors import FieldError, InvalidInput
from evalruns.services import get_services
from evalruns.services.access import touch_transcript
from http_api.problems import api_errors
from http_api.requests import json_response, page_params, page_response

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)


@bp.route(route="runs/{runId}/transcripts", methods=["GET"])
@api_errors
def transcripts_list(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    run = services.runs.get(req.route_params["runId"])
    page = services.transcripts.list(
        run.id,
        *page_params(req),
        model_id=req.params.get("modelId") or None,
        status=_status_filter(req.params.get("status")),
    )
    return page_response(page)


@bp.route(route="runs/{runId}/transcripts/{transcriptId}", methods=["GET"])
@api_errors
def transcripts_get(req: func.HttpRequest) -> func.HttpResponse:
    services = get_services()
    transcript = services.transcripts.get(
        req.route_params["runId"], req.route_params["transcriptId"]
    )
    touch_transcript(services, transcript)
    return json_response(transcript.to_json_dict())


def _status_filter(raw: str | None) -> TranscriptStatus | None:
    if not raw:
        return None
    try:
        return TranscriptStatus(raw.upper())
    except ValueError as exc:
        raise InvalidInput(
            f"status must be SUCCEEDED or FAILED, not {raw!r}",
            [FieldError(("query", "status"), "must be SUCCEEDED or FAILED")],
        ) from exc

"""Transcripts of a run: the list view and one whole conversation."""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from evalruns.domain.statuses import TranscriptStatus
from evalruns.lazy import lazy
from http_api.params import MODEL_ID, TRANSCRIPT_STATUS, page
from http_api.problems import api_errors
from http_api.requests import json_response, page_response
from http_api.routes import http

bp = df.Blueprint(http_auth_level=func.AuthLevel.FUNCTION)
container = lazy("evalruns.services.container")
access = lazy("evalruns.services.access")


@http(bp)
@api_errors
def transcripts_list(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    run_id = req.route_params["runId"]
    # 404 for an unknown run from its status column alone, not the whole stored run.
    services.runs.status(run_id)
    status = TRANSCRIPT_STATUS.read(req)
    transcripts = services.transcripts.list(
        run_id,
        *page(req),
        model_id=MODEL_ID.read(req),
        status=TranscriptStatus(status) if status else None,
    )
    return page_response(transcripts)


@http(bp)
@api_errors
def transcripts_get(req: func.HttpRequest) -> func.HttpResponse:
    services = container.get_services()
    transcript = services.transcripts.get(
        req.route_params["runId"], req.route_params["transcriptId"]
    )
    access.touch_transcript(services, transcript)
    return json_response(transcript.to_json_dict())

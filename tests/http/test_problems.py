"""Errors as problem+json: storage out of reach is a 503 with `Retry-After` and a readable
detail (never the SDK's text, never a traceback); anything unexpected stays a 500."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError

from http_api.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, api_errors, to_response

SECRET_URL = "http://127.0.0.1:10002/devstoreaccount1/Runs?sig=SECRET"


def body(response: func.HttpResponse) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(response.get_body())
    return decoded


def test_storage_out_of_reach_is_a_503_to_retry_later() -> None:
    response = to_response(ServiceRequestError(f"Connection refused: {SECRET_URL}"))
    assert response.status_code == 503
    assert response.mimetype == PROBLEM_JSON
    assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    problem = body(response)
    assert problem["status"] == 503 and problem["title"] == "Service unavailable"
    assert "storage is unavailable" in problem["detail"]
    assert "SECRET" not in response.get_body().decode()


def test_a_route_whose_storage_connection_is_refused_answers_503() -> None:
    @api_errors
    def route(req: func.HttpRequest) -> func.HttpResponse:
        raise ConnectionRefusedError(111, "Connection refused")

    request = func.HttpRequest("GET", "http://localhost/api/runs/x", body=b"")
    response = route(request)
    assert response.status_code == 503
    assert "cannot connect" in body(response)["detail"]
    assert "Traceback" not in response.get_body().decode()


@pytest.mark.parametrize("error", [ValueError("a bug"), KeyError("x")])
def test_anything_else_stays_a_500_without_retry_after(error: Exception) -> None:
    response = to_response(error)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert "incident" in body(response)

"""Which failures mean storage is out of reach (a 503 the client may retry), and which are
ours (a 500)."""

from __future__ import annotations

import http.client

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from evalruns.errors import Unavailable, storage_unavailable

SECRET_URL = "http://127.0.0.1:10002/devstoreaccount1/Runs?sig=SECRET"


def busy(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"{status} at {SECRET_URL}")
    error.status_code = status
    return error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ServiceRequestError(f"Connection refused: {SECRET_URL}"), "cannot connect"),
        (ConnectionRefusedError(111, "Connection refused"), "cannot connect"),
        (ServiceResponseError("Connection aborted."), "the connection was lost"),
        (ConnectionResetError(104, "Connection reset by peer"), "the connection was lost"),
        (http.client.RemoteDisconnected("Remote end closed connection"), "the connection was lost"),
        (http.client.IncompleteRead(b""), "the connection was lost"),
        (TimeoutError("timed out"), "no answer in time"),
        (busy(503), "the service is busy: HTTP 503"),
        (busy(500), "the service is busy: HTTP 500"),
    ],
)
def test_storage_out_of_reach_is_unavailable(error: Exception, reason: str) -> None:
    unavailable = storage_unavailable(error)
    assert isinstance(unavailable, Unavailable)
    assert reason in unavailable.message
    assert "SECRET" not in unavailable.message and "127.0.0.1" not in unavailable.message


def test_the_cause_of_a_failure_counts() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("could not read the run") from inner
    except RuntimeError as outer:
        unavailable = storage_unavailable(outer)
    assert unavailable is not None and "cannot connect" in unavailable.message


@pytest.mark.parametrize(
    "error",
    [
        ValueError("a bug"),
        KeyError("status"),
        busy(400),
        busy(409),
        ResourceNotFoundError("no such entity"),
        FileNotFoundError("not a connection problem"),
    ],
)
def test_other_failures_are_not(error: Exception) -> None:
    assert storage_unavailable(error) is None

"""The one place where errors become HTTP responses (RFC 9457 problem+json).

Every route is wrapped by `api_errors`: library errors map to 4xx with a message a person can
act on, storage that cannot be reached to a 503 with `Retry-After`, and anything unexpected
becomes a 500 without a stack trace (logged with its id).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import azure.functions as func

from evalruns.errors import (
    Conflict,
    EvalrunsError,
    FieldError,
    InvalidInput,
    NotFound,
    Unavailable,
    storage_unavailable,
)

if TYPE_CHECKING:
    from pydantic import ValidationError

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
# Seconds a client is asked to wait after a 503 (storage or the Durable runtime unavailable).
RETRY_AFTER_SECONDS = 5
P = ParamSpec("P")
R = TypeVar("R")

STATUS_BY_ERROR: dict[type[EvalrunsError], HTTPStatus] = {
    InvalidInput: HTTPStatus.BAD_REQUEST,
    NotFound: HTTPStatus.NOT_FOUND,
    Conflict: HTTPStatus.CONFLICT,
    Unavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}


def problem(
    status: HTTPStatus,
    detail: str,
    *,
    title: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> func.HttpResponse:
    body: dict[str, Any] = {
        "type": f"https://evalruns.dev/problems/{status.phrase.lower().replace(' ', '-')}",
        "title": title or status.phrase,
        "status": int(status),
        "detail": detail,
        **extra,
    }
    if errors is not None:
        body["errors"] = [{"loc": list(error.loc), "msg": error.msg} for error in errors]
    return func.HttpResponse(
        json.dumps(body),
        status_code=int(status),
        headers=headers,
        mimetype=PROBLEM_JSON,
        charset="utf-8",
    )


def validation_problem(error: ValidationError, location: str) -> InvalidInput:
    """A pydantic error as InvalidInput, messages without pydantic's 'Value error,' prefix."""
    errors = [
        FieldError(
            (location, *item["loc"]),
            str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, "),
        )
        for item in error.errors(include_url=False)
    ]
    detail = "; ".join(
        f"{'.'.join(str(part) for part in e.loc[1:]) or location}: {e.msg}" for e in errors
    )
    return InvalidInput(f"the request is not valid: {detail}", errors)


def to_response(error: Exception) -> func.HttpResponse:
    """Library errors as 4xx; storage out of reach as a 503; anything else, a pydantic error
    included, is ours: a 500.

    Request bodies are validated (and their errors converted) by `parse_body`, so a
    ValidationError reaching here is a server fault, such as a setting out of range.
    """
    if not isinstance(error, EvalrunsError):
        unavailable = storage_unavailable(error)
        if unavailable is not None:
            log.warning("%s (%s)", unavailable.message, type(error).__name__)
            error = unavailable
    if isinstance(error, EvalrunsError):
        status = next(
            (code for kind, code in STATUS_BY_ERROR.items() if isinstance(error, kind)),
            HTTPStatus.BAD_REQUEST,
        )
        extra: dict[str, Any] = {}
        if isinstance(error, Conflict) and error.current_status:
            extra["currentStatus"] = error.current_status
        errors = error.errors if isinstance(error, InvalidInput) and error.errors else None
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        headers = retry if status == HTTPStatus.SERVICE_UNAVAILABLE else None
        return problem(
            status, error.message, title=error.title, errors=errors, headers=headers, **extra
        )
    incident = uuid.uuid4().hex[:12]
    log.exception("unexpected error (incident %s)", incident)
    return problem(
        HTTPStatus.INTERNAL_SERVER_ERROR,
        f"something went wrong on our side; quote incident {incident} when reporting it",
        incident=incident,
    )


def api_errors(
    handler: Callable[P, Awaitable[func.HttpResponse]] | Callable[P, func.HttpResponse],
) -> Callable[P, Any]:
    """Wrap a route (sync or async) so every error leaves as problem+json."""
    if inspect.iscoroutinefunction(handler):
        async_handler = cast(Callable[P, Awaitable[func.HttpResponse]], handler)

        @functools.wraps(handler)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
            try:
                return await async_handler(*args, **kwargs)
            except Exception as error:
                return to_response(error)

        return async_wrapper

    sync_handler = cast(Callable[P, func.HttpResponse], handler)

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> func.HttpResponse:
        try:
            return sync_handler(*args, **kwargs)
        except Exception as error:
            return to_response(error)

    return wrapper

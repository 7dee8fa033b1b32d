"""The library's error hierarchy. The HTTP layer maps these to problem+json in one place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    loc: tuple[str | int, ...]
    msg: str


class EvalrunsError(Exception):
    """Base of every error a user can act on; `message` is safe to show."""

    title = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(EvalrunsError):
    title = "Not found"


class Conflict(EvalrunsError):
    """The request is valid but not in the resource's current state."""

    title = "Conflict"

    def __init__(self, message: str, *, current_status: str | None = None) -> None:
        super().__init__(message)
        self.current_status = current_status


class InvalidInput(EvalrunsError):
    title = "Invalid input"

    def __init__(self, message: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


class Unavailable(EvalrunsError):
    """A service we depend on (storage, the Durable runtime) failed; details are logged."""

    title = "Service unavailable"


# HTTP statuses with which a storage service says it cannot answer now (Table Storage's
# ServerBusy is a 503, a timeout a 500 or a 408).
TRANSIENT_STORAGE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_CAUSES_FOLLOWED = 8


def storage_unavailable(error: BaseException) -> Unavailable | None:
    """The `Unavailable` a failure amounts to when storage could not be reached or could not
    answer (the SDK's `ServiceRequestError`/`ServiceResponseError`, a busy or timed-out
    service, or a refused, reset or timed-out connection of `LeanTable`), looking through
    the errors it was raised from; `None` for any other failure.

    The message names what happened, never the SDK's text, which can quote URLs. (Imports on
    first use: most processes never need them.)
    """
    from http.client import HTTPException

    from azure.core.exceptions import (
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and len(seen) < _CAUSES_FOLLOWED and current not in seen:
        seen.append(current)
        reason = None
        if isinstance(current, ServiceRequestError | ConnectionRefusedError):
            reason = "cannot connect"
        elif isinstance(current, ServiceResponseError | ConnectionError | HTTPException):
            reason = "the connection was lost"
        elif isinstance(current, TimeoutError):
            reason = "no answer in time"
        elif (
            isinstance(current, HttpResponseError)
            and current.status_code in TRANSIENT_STORAGE_STATUSES
        ):
            reason = f"the service is busy: HTTP {current.status_code}"
        if reason is not None:
            return Unavailable(
                f"storage is unavailable right now ({reason}); try again in a few seconds"
            )
        current = current.__cause__ or current.__context__
    return None

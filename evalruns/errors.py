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

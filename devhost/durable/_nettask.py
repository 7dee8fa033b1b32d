"""A minimal model of .NET ``Task`` semantics, so the extension's C# replay code can be transcribed.

The Durable extension replays an out-of-proc orchestrator's actions with ordinary C# ``async``
code running on DurableTask.Core's synchronous task scheduler: every continuation runs inline,
at the moment the awaited task completes, while history events are being processed. The rules
that matter for fidelity, and that this module reproduces, are:

* an ``async`` method runs synchronously until its first ``await`` of an incomplete task, and
  an exception it raises (even before that ``await``) faults its returned task instead of
  propagating to the caller (see :func:`start`);
* ``await`` on a completed task continues immediately; on a pending task the continuation runs
  when the task completes, in registration order;
* ``Task.WhenAll`` completes when *every* child has completed, even if one failed early, and
  ``Task.WhenAny`` completes when *any* child completes (a canceled child counts), and throws
  synchronously when given no tasks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any


class TaskState(enum.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAULTED = "faulted"
    CANCELED = "canceled"


class TaskCanceledError(Exception):
    """``TaskCanceledException``: awaiting a canceled task raises this."""


class DotNetArgumentError(Exception):
    """``System.ArgumentException`` thrown by the extension or by ``Task.WhenAny``."""


class NetTask:
    """A ``Task``/``TaskCompletionSource`` pair: completed once, continuations run inline."""

    __slots__ = ("_continuations", "_error", "_result", "state")

    def __init__(self) -> None:
        self.state = TaskState.PENDING
        self._result: Any = None
        self._error: BaseException | None = None
        self._continuations: list[Callable[[], None]] = []

    @property
    def done(self) -> bool:
        return self.state is not TaskState.PENDING

    @property
    def error(self) -> BaseException | None:
        return self._error

    def result(self) -> Any:
        """The task's value, raising its exception (or :class:`TaskCanceledError`)."""
        if self.state is TaskState.SUCCEEDED:
            return self._result
        if self.state is TaskState.FAULTED:
            assert self._error is not None
            raise self._error
        if self.state is TaskState.CANCELED:
            raise TaskCanceledError("A task was canceled.")
        raise RuntimeError("result() on a pending task")

    def try_set_result(self, value: Any) -> bool:
        return self._complete(TaskState.SUCCEEDED, value, None)

    def try_set_exception(self, error: BaseException) -> bool:
        return self._complete(TaskState.FAULTED, None, error)

    def try_set_canceled(self) -> bool:
        return self._complete(TaskState.CANCELED, None, None)

    def on_completed(self, callback: Callable[[], None]) -> None:
        """Register a continuation; it runs now if the task is already complete."""
        if self.done:
            callback()
        else:
            self._continuations.append(callback)

    def _complete(self, state: TaskState, value: Any, error: BaseException | None) -> bool:
        if self.done:
            return False
        self.state = state
        self._result = value
        self._error = error
        continuations, self._continuations = self._continuations, []
        for continuation in continuations:
            continuation()
        return True

    def __await__(self) -> Generator[NetTask, None, Any]:
        if not self.done:
            yield self
        return self.result()


def completed(value: Any = None) -> NetTask:
    """``Task.FromResult`` / ``Task.CompletedTask``."""
    task = NetTask()
    task.try_set_result(value)
    return task


def never() -> NetTask:
    """``Task.Delay(Timeout.Infinite)``: a task that never completes."""
    return NetTask()


def start(coroutine: Coroutine[NetTask, None, Any]) -> NetTask:
    """Run ``coroutine`` like a C# ``async`` method and return the task for its outcome."""
    task = NetTask()

    def step() -> None:
        try:
            awaited = coroutine.send(None)
        except StopIteration as stop:
            task.try_set_result(stop.value)
            return
        except TaskCanceledError:
            task.try_set_canceled()
            return
        except Exception as error:
            task.try_set_exception(error)
            return
        awaited.on_completed(step)

    step()
    return task


def when_all(tasks: Sequence[NetTask]) -> NetTask:
    """``Task.WhenAll``: completes once every task has completed, whatever their outcome."""
    combined = NetTask()
    remaining = len(tasks)
    if remaining == 0:
        combined.try_set_result([])
        return combined

    def child_done() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining:
            return
        faults = [t.error for t in tasks if t.state is TaskState.FAULTED]
        if faults:
            assert faults[0] is not None
            combined.try_set_exception(faults[0])
        elif any(t.state is TaskState.CANCELED for t in tasks):
            combined.try_set_canceled()
        else:
            combined.try_set_result([t.result() for t in tasks])

    for task in tasks:
        task.on_completed(child_done)
    return combined


def when_any(tasks: Sequence[NetTask]) -> NetTask:
    """``Task.WhenAny``: completes (successfully) with the first task to complete."""
    if not tasks:
        raise DotNetArgumentError("The tasks argument contains no tasks. (Parameter 'tasks')")
    combined = NetTask()

    def completer(winner: NetTask) -> Callable[[], None]:
        def complete() -> None:
            combined.try_set_result(winner)

        return complete

    for task in tasks:
        task.on_completed(completer(task))
    return combined

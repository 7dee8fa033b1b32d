"""The Python worker's side: finding Durable functions in a ``DFApp`` and invoking them.

Functions are invoked the way ``azure-functions-python-worker`` does it: arguments go through
the binding converters of ``azure.functions`` (``OrchestrationTriggerConverter``,
``ActivityTriggerConverter``), results are encoded by the same converters, and an exception
reaches the host as an ``RpcException`` whose message is
``"Result: Failure\\nException: {Type}: {message}\\nStack: {trace}"`` (worker
``dispatcher._serialize_exception``, host ``RpcException``). The extension parses that text
(``OutOfProcExceptionHelpers``), so failures are reproduced byte for byte where it matters.

The engine reaches the functions through a :class:`FunctionInvoker`: :class:`LocalInvoker`
invokes them in this process; devhost's host process uses one that sends the invocations to
its Python worker process, where a :class:`LocalInvoker` runs them (``devhost.worker_main``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from azure.functions import meta
from azure.functions.decorators.function_app import Function, FunctionRegister
from azure.functions.durable_functions import (
    ActivityTriggerConverter,
    OrchestrationTriggerConverter,
)

from .._context import Context, invocation_local
from ._history import dumps

if TYPE_CHECKING:
    from ..loader import FunctionInfo, IndexedFunction

ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"

_RESULT_LABEL = "Result:"
_MESSAGE_LABEL = "\nException:"
_STACK_LABEL = "\nStack:"
_OUT_OF_PROC_DATA_LABEL = "\n\n$OutOfProcData$:"


class EngineConfigurationError(Exception):
    """The app cannot be hosted as written (the real host would refuse it as well)."""


@dataclass(frozen=True)
class DurableFunction:
    """An orchestrator or activity as the extension registers it."""

    name: str
    """Durable name: the trigger's ``orchestration``/``activity`` or the function name."""
    binding_name: str
    """The trigger parameter, through which the worker passes the context or input."""
    user_function: Callable[..., Any]
    accepts_context: bool
    """Whether the function declares ``context`` (the worker passes ``func.Context`` then)."""
    is_async: bool
    """``async def``: the worker awaits it on its event loop instead of using a pool thread."""
    directory: str
    """``context.function_directory``."""
    clients: tuple[str, ...] = ()
    """Parameters bound to a ``durableClient`` input (an activity that starts or signals
    orchestrations): the engine hands them its client binding JSON."""


_FUNCTIONS: weakref.WeakKeyDictionary[FunctionRegister, list[Function]] = (
    weakref.WeakKeyDictionary()
)


def app_functions(app: FunctionRegister) -> list[Function]:
    """``app.get_functions()``, cached per app.

    The SDK remembers the names it indexed (``functions_bindings``) and rejects a second call
    as duplicate names; the worker only ever indexes an app once. Clearing that memo first
    lets an app that something else already indexed be indexed again, with the same result.
    """
    functions = _FUNCTIONS.get(app)
    if functions is None:
        app.functions_bindings = None
        functions = _FUNCTIONS[app] = app.get_functions()
    return functions


def _in_the_worker_process(**_: Any) -> Any:
    raise RuntimeError("this function runs in the Python worker process")


class FunctionCatalog:
    """Orchestrators and activities of an app; lookups ignore case like ``FunctionName``."""

    def __init__(self) -> None:
        self._orchestrators: dict[str, DurableFunction] = {}
        self._activities: dict[str, DurableFunction] = {}

    @classmethod
    def from_indexed(cls, functions: Iterable[IndexedFunction]) -> FunctionCatalog:
        """The Durable functions among what the worker indexed (host.json's ``functions``
        already applied: the extension knows only the functions the host loaded)."""
        catalog = cls()
        for function in functions:
            if function.durable_name is None:
                continue
            if function.trigger_type == ORCHESTRATION_TRIGGER:
                registry = catalog._orchestrators
            elif function.trigger_type == ACTIVITY_TRIGGER:
                registry = catalog._activities
            else:
                continue
            name = function.durable_name
            clients = tuple(function.durable_clients)
            extra = sorted(
                (set(function.input_types) | set(function.output_types))
                - {function.trigger_param, *clients}
            )
            if extra:
                raise EngineConfigurationError(
                    f"Function {name!r} needs bindings this engine cannot supply: {extra}"
                )
            if name.casefold() in registry:
                raise EngineConfigurationError(
                    f"Two {function.trigger_type} functions are named {name!r}"
                )
            registry[name.casefold()] = DurableFunction(
                name=name,
                binding_name=function.trigger_param,
                user_function=function.user_function,
                accepts_context=function.requires_context,
                is_async=function.is_async,
                directory=function.directory,
                clients=clients,
            )
        return catalog

    @classmethod
    def of_metadata(cls, functions: Iterable[FunctionInfo]) -> FunctionCatalog:
        """The catalog of an app loaded in another process: names only, from the metadata the
        worker sent (what the host knows)."""
        catalog = cls()
        for function in functions:
            if function.durable_name is None:
                continue
            registry = (
                catalog._orchestrators
                if function.trigger_type == ORCHESTRATION_TRIGGER
                else catalog._activities
            )
            registry[function.durable_name.casefold()] = DurableFunction(
                function.durable_name,
                "",
                _in_the_worker_process,
                False,
                False,
                "",
                clients=tuple(function.durable_clients),
            )
        return catalog

    def orchestrator(self, name: str) -> DurableFunction | None:
        return self._orchestrators.get(name.casefold())

    def activity(self, name: str) -> DurableFunction | None:
        return self._activities.get(name.casefold())

    @property
    def orchestrator_names(self) -> list[str]:
        return [entry.name for entry in self._orchestrators.values()]

    @property
    def activity_names(self) -> list[str]:
        return [entry.name for entry in self._activities.values()]


def unknown_function_message(name: str, kind: str, known: list[str]) -> str:
    """``GetInvalidActivityFunctionMessage`` / ``GetInvalidOrchestratorFunctionMessage``."""
    if known:
        listed = "', '".join(known)
        info = f"The following are the known {kind} functions: '{listed}'."
    else:
        info = f"No {kind} functions are currently registered!"
    return (
        f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. "
        f"Additional info: {info}"
    )


@dataclass(frozen=True)
class FunctionOutcome:
    """What the host learns from one invocation: a return value or an ``RpcException``."""

    returned: Any = None
    rpc_error: str | None = None
    cpu_seconds: float = 0.0
    """CPU time of the invocation (observability: an instance's orchestrator CPU)."""


def rpc_exception_message(error: BaseException) -> str:
    """The host's ``RpcException`` message for an exception raised by Python code."""
    try:
        message = f"{type(error).__name__}: {error}"
    except Exception:
        message = "Unhandled exception in function. Could not serialize original exception message."
    stack = "".join(traceback.extract_tb(error.__traceback__).format())
    return f"Result: Failure{_MESSAGE_LABEL} {message}{_STACK_LABEL} {stack}"


def _out_of_proc_message(rpc_message: str) -> str | None:
    """``OutOfProcExceptionHelpers.TryGetFullOutOfProcMessage``."""
    if not (
        rpc_message.startswith(_RESULT_LABEL)
        and _MESSAGE_LABEL in rpc_message
        and _STACK_LABEL in rpc_message
    ):
        return None
    start = rpc_message.index(_MESSAGE_LABEL) + len(_MESSAGE_LABEL)
    return rpc_message[start : rpc_message.index(_STACK_LABEL)]


def extract_out_of_proc_state(rpc_message: str) -> str | None:
    """``TryExtractOutOfProcStateJson``: the orchestrator state after ``$OutOfProcData$:``."""
    message = _out_of_proc_message(rpc_message)
    if message is None or _OUT_OF_PROC_DATA_LABEL not in message:
        return None
    return message[message.index(_OUT_OF_PROC_DATA_LABEL) + len(_OUT_OF_PROC_DATA_LABEL) :]


def friendly_message(rpc_message: str) -> str:
    """``TryGetExceptionWithFriendlyMessage``: the text between the labels (leading space kept)."""
    message = _out_of_proc_message(rpc_message)
    if message is None:
        return rpc_message
    if _OUT_OF_PROC_DATA_LABEL in message:
        return message[: message.index(_OUT_OF_PROC_DATA_LABEL)]
    return message


def remote_stack(rpc_message: str) -> str:
    return rpc_message.split(_STACK_LABEL, 1)[1].lstrip() if _STACK_LABEL in rpc_message else ""


def serialized_cause(message: str, rpc_message: str) -> str:
    """An approximation of ``Utils.SerializeCause`` for the exception the extension reports.

    The real value is Newtonsoft's serialisation of a ``System.Exception`` wrapping the host's
    ``RpcException``; the SDK only ever embeds it in an error message, so the shape is kept
    and .NET-only members are left null.
    """

    def exception(class_name: str, text: str, inner: dict[str, Any] | None) -> dict[str, Any]:
        return {
            "ClassName": class_name,
            "Message": text,
            "Data": None,
            "InnerException": inner,
            "HelpURL": None,
            "StackTraceString": None,
            "RemoteStackTraceString": None,
            "RemoteStackIndex": 0,
            "ExceptionMethod": None,
            "HResult": -2146233088,
            "Source": None,
            "WatsonBuckets": None,
        }

    rpc = exception("Microsoft.Azure.WebJobs.Script.Workers.Rpc.RpcException", rpc_message, None)
    return dumps(exception("System.Exception", message, rpc))


def invoke_orchestrator(function: DurableFunction, context_json: str) -> FunctionOutcome:
    """Invoke an orchestrator with the extension's context JSON, as the worker would."""
    started = time.thread_time()
    context = OrchestrationTriggerConverter.decode(
        meta.Datum(context_json, "string"), trigger_metadata=None
    )
    try:
        returned = function.user_function(
            **_with_context(function, {function.binding_name: context})
        )
        encoded = OrchestrationTriggerConverter.encode(returned, expected_type=None)
    except Exception as error:
        return FunctionOutcome(
            rpc_error=rpc_exception_message(error), cpu_seconds=time.thread_time() - started
        )
    return FunctionOutcome(returned=encoded.value, cpu_seconds=time.thread_time() - started)


@dataclass(frozen=True)
class ActivityOutcome:
    """``TaskCompleted.Result``, or ``TaskFailed.Reason``/``Details`` as the extension records."""

    result: str | None = None
    failed: bool = False
    reason: str | None = None
    details: str | None = None


def invoke_activity(
    function: DurableFunction,
    input_text: Any,
    run_coroutine: Callable[[Any], Any],
    client_json: str | None = None,
) -> ActivityOutcome:
    """Run an activity in-process with the worker's input decoding and output encoding."""
    try:
        output = function.user_function(**_activity_arguments(function, input_text, client_json))
        if inspect.isawaitable(output):
            output = run_coroutine(output)
        return _activity_success(output)
    except Exception as error:
        return _activity_failure(function, error)


async def invoke_activity_async(
    function: DurableFunction, input_text: Any, client_json: str | None = None
) -> ActivityOutcome:
    """:func:`invoke_activity` for an ``async def`` activity, awaited on the running loop.

    The worker awaits coroutine functions on its one event loop and runs the others in its
    thread pool; callers choose with ``DurableFunction.is_async``.
    """
    try:
        output = function.user_function(**_activity_arguments(function, input_text, client_json))
        if inspect.isawaitable(output):
            output = await output
        return _activity_success(output)
    except Exception as error:
        return _activity_failure(function, error)


def _activity_arguments(
    function: DurableFunction, input_text: Any, client_json: str | None
) -> dict[str, Any]:
    value = ActivityTriggerConverter.decode(meta.Datum(input_text, "string"), trigger_metadata=None)
    arguments = {function.binding_name: value}
    for name in function.clients:
        if client_json is None:
            raise RuntimeError(f"activity {function.name!r} needs a durable client, but none runs")
        arguments[name] = client_json
    return _with_context(function, arguments)


def _with_context(function: DurableFunction, arguments: dict[str, Any]) -> dict[str, Any]:
    """The worker's ``Context`` for every invocation (the same one HTTP functions get), its
    invocation id in the invoking thread's ``thread_local_storage``."""
    context = Context(function.name, function.directory)
    invocation_local.invocation_id = context.invocation_id
    if function.accepts_context:
        arguments["context"] = context
    return arguments


def _activity_success(output: Any) -> ActivityOutcome:
    encoded = ActivityTriggerConverter.encode(output, expected_type=None)
    parsed = json.loads(encoded.value)
    # The host turns a JSON ``null`` return into no output at all (``SetOutput(null)``).
    return ActivityOutcome(result=None if parsed is None else dumps(parsed))


def _activity_failure(function: DurableFunction, error: Exception) -> ActivityOutcome:
    rpc_message = rpc_exception_message(error)
    message = friendly_message(rpc_message)
    return ActivityOutcome(
        failed=True,
        reason=f"Activity function '{function.name}' failed: {message}",
        details=serialized_cause(message, rpc_message),
    )


class FunctionInvoker(Protocol):
    """How an engine reaches orchestrator and activity functions."""

    def invoke_orchestrator(self, function: DurableFunction, context_json: str) -> FunctionOutcome:
        """Blocking; called from the engine's orchestrator threads."""

    async def invoke_activity(
        self, function: DurableFunction, input_text: str, client_json: str | None = None
    ) -> ActivityOutcome:
        """Awaited on the engine's event loop; ``client_json`` is the ``durableClient``
        binding for an activity that declares one."""


class LocalInvoker:
    """Functions invoked in this process as the Python worker invokes them: ``async def``
    activities awaited on the running loop, the others in a thread pool (a synchronous activity
    that returns an awaitable has it awaited on that loop), orchestrators on the caller's thread.
    """

    def __init__(self, activity_threads: int | None = None) -> None:
        self._pool = ThreadPoolExecutor(activity_threads, thread_name_prefix="durable-activity")

    def invoke_orchestrator(self, function: DurableFunction, context_json: str) -> FunctionOutcome:
        return invoke_orchestrator(function, context_json)

    async def invoke_activity(
        self, function: DurableFunction, input_text: str, client_json: str | None = None
    ) -> ActivityOutcome:
        if function.is_async:
            return await invoke_activity_async(function, input_text, client_json)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, invoke_activity, function, input_text, partial(_run_on, loop), client_json
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _run_on(loop: asyncio.AbstractEventLoop, awaitable: Any) -> Any:
    """From a pool thread: await ``awaitable`` on ``loop`` and return its result."""
    return asyncio.run_coroutine_threadsafe(_await(awaitable), loop).result()


class AsyncRunner:
    """The event loop where ``async`` activities run: one per process, on its own thread,
    never closed.

    Like the worker, which awaits every ``async`` function on its one long-lived loop: a
    library that keeps a session bound to the loop it first ran on (the Durable client does)
    works across engines as it does across invocations in Azure. Owning the loop keeps
    activities independent of whatever loop a test runs.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _lock = threading.Lock()

    def run(self, awaitable: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(_await(awaitable), self._shared_loop()).result()

    @classmethod
    def _shared_loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                cls._loop = asyncio.new_event_loop()
                threading.Thread(
                    target=cls._loop.run_forever, name="durable-engine-loop", daemon=True
                ).start()
            return cls._loop

    def close(self) -> None:
        """Nothing to release: the loop outlives the engine, as the worker's does."""


async def _await(awaitable: Any) -> Any:
    return await awaitable

"""Loading and indexing a v2-model app the way the Python worker and the host do.

* The worker (``loader.index_function_app``) imports the script file (``function_app.py`` or
  ``PYTHON_SCRIPT_FILE_NAME``) with the app directory on ``sys.path``, requires exactly one
  top-level ``FunctionRegister`` instance and calls ``get_functions()`` (which rejects
  duplicate names and functions without exactly one trigger). ``Registry.add_indexed_function``
  then checks every function: each Python parameter needs a binding of that name (``context``
  excepted), each binding a parameter, annotations must suit the binding's converter, no
  ``inout`` bindings, ``$return`` only as output. Any failure fails the whole app.
* The host (``WorkerFunctionMetadataProvider.ValidateMetadata``, ``ScriptHost.ValidateFunction``)
  then rejects invalid function and binding names, duplicate binding names, HTTP routes in the
  reserved ``admin``/``runtime`` space and routes that conflict with another function's.

As in Core Tools, the two halves run in different processes: the worker process imports and
indexes the app (:func:`index_functions`) and sends the host plain metadata
(:class:`FunctionInfo`, the worker's ``FunctionMetadataResponse``); the host validates it
(:func:`validate_functions`) and never imports the app. :func:`index_app` does both in one
process. devhost fails loudly on all of these, and on triggers and bindings it cannot serve.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import BindingDirection
from azure.functions.decorators.function_app import Function, FunctionRegister

from .config import resolve_whole_setting
from .durable._worker import app_functions
from .routing import Route, RouteTemplateError, build_template, routes_conflict

HTTP_TRIGGER = "httpTrigger"
HTTP_OUTPUT = "http"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
TIMER_TRIGGER = "timerTrigger"
DURABLE_CLIENT = "durableClient"
SUPPORTED_TRIGGERS = (HTTP_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER, TIMER_TRIGGER)
AUTH_LEVELS = ("anonymous", "function", "admin")
_FUNCTION_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,127}$", re.I)
_BINDING_NAME = re.compile(r"^([a-zA-Z][a-zA-Z0-9]{0,127}|\$return)$")
_SCRIPT_FILE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_\-]*\.py$")


class AppIndexError(Exception):
    """The app cannot be hosted: the worker or the host would refuse it (or devhost can't)."""


class FunctionLoadError(RuntimeError):
    """The worker's error for a function it cannot load (same message shape)."""

    def __init__(self, function_name: str, message: str) -> None:
        super().__init__(f"cannot load the {function_name} function: {message}")


# -- the worker's binding registry ------------------------------------------------------------


class GenericBinding:
    """The worker's ``bindings.generic.GenericBinding``: any binding without a converter."""

    @classmethod
    def check_input_type_annotation(cls, pytype: type) -> bool:
        return issubclass(pytype, (str, bytes))

    @classmethod
    def check_output_type_annotation(cls, pytype: type) -> bool:
        return issubclass(pytype, (str, bytes, bytearray))

    @classmethod
    def has_implicit_output(cls, binding_type: str | None = None) -> bool:
        return binding_type != DURABLE_CLIENT

    @classmethod
    def decode(cls, data: Any, *, trigger_metadata: Any) -> Any:
        if data is None or data.type is None:
            return None
        if data.type in ("string", "bytes", "json"):
            return data.value
        raise ValueError(
            f'unexpected type of data received for the "generic" binding : {data.type!r}'
        )

    @classmethod
    def encode(cls, obj: Any, *, expected_type: type | None) -> Any:
        from azure.functions.meta import Datum

        if isinstance(obj, str):
            return Datum(type="string", value=obj)
        if isinstance(obj, bytes | bytearray):
            return Datum(type="bytes", value=bytes(obj))
        if obj is None:
            return Datum(type=None, value=obj)
        raise NotImplementedError


def get_binding(binding_type: str) -> Any:
    """``bindings.meta.get_binding``: the library's converter, else the generic binding."""
    registry = func.get_binding_registry()  # type: ignore[no-untyped-call]
    converter = registry.get(binding_type) if registry is not None else None
    return converter if converter is not None else GenericBinding


def has_implicit_output(binding_type: str) -> bool:
    binding = get_binding(binding_type)
    if binding is GenericBinding:
        return GenericBinding.has_implicit_output(binding_type)
    check = getattr(binding, "has_implicit_output", None)
    return bool(check()) if check is not None else False


def _is_generic(annotation: Any) -> bool:
    """``typing_inspect.is_generic_type``: a subscripted or generic class (not a Union)."""
    origin = typing.get_origin(annotation)
    return origin is not None and isinstance(origin, type)


def _is_out(annotation: Any) -> bool:
    origin = typing.get_origin(annotation) if _is_generic(annotation) else annotation
    return isinstance(origin, type) and origin.__name__ == "Out"


# -- what indexing produces ----------------------------------------------------------------------


@dataclass(frozen=True)
class ParamType:
    """``functions.ParamTypeInfo``: the converter to use and the annotated Python type."""

    binding_type: str
    pytype: Any


@dataclass(frozen=True)
class HttpTriggerInfo:
    param: str
    route: str
    methods: tuple[str, ...] | None
    auth_level: str


@dataclass(frozen=True)
class TimerTriggerInfo:
    """A ``timerTrigger`` binding: the schedule as written (``%Setting%`` not yet resolved)."""

    param: str
    schedule: str
    run_on_startup: bool
    use_monitor: bool
    """As configured (default on); the host turns it off for schedules under a minute."""


@dataclass(frozen=True)
class BindingInfo:
    """``BindingInfo`` of the worker's metadata: what the host validates."""

    name: str | None
    type: str
    direction: str
    """``in`` or ``out`` (``inout`` is refused by the worker)."""


@dataclass(frozen=True)
class FunctionInfo:
    """A function as the host knows it: plain data the worker sends (``RpcFunctionMetadata``)."""

    name: str
    trigger_type: str
    bindings: tuple[BindingInfo, ...]
    http: HttpTriggerInfo | None = None
    http_output: str | None = None
    """The binding carrying the HTTP response: ``$return`` or an ``Out`` parameter."""
    durable_name: str | None = None
    durable_clients: dict[str, str | None] = field(default_factory=dict)
    timer: TimerTriggerInfo | None = None


@dataclass(frozen=True)
class IndexedFunction:
    """A function as the worker registered it (``FunctionInfo``) plus what the host knows."""

    name: str
    function: Function
    user_function: Callable[..., Any]
    directory: str
    trigger_type: str
    trigger_param: str
    is_async: bool
    requires_context: bool
    has_return: bool
    input_types: dict[str, ParamType]
    output_types: dict[str, ParamType]
    return_type: ParamType | None
    http: HttpTriggerInfo | None = None
    durable_name: str | None = None
    durable_clients: dict[str, str | None] = field(default_factory=dict)
    """Durable client parameters and the task hub each binding names (``None``: default)."""
    timer: TimerTriggerInfo | None = None

    @property
    def http_output(self) -> str | None:
        """The binding carrying the HTTP response: ``$return`` or an ``Out`` parameter."""
        if self.return_type is not None and self.return_type.binding_type == HTTP_OUTPUT:
            return "$return"
        for name, param in self.output_types.items():
            if param.binding_type == HTTP_OUTPUT:
                return name
        return None

    def info(self) -> FunctionInfo:
        """The metadata the worker sends the host."""
        return FunctionInfo(
            name=self.name,
            trigger_type=self.trigger_type,
            bindings=tuple(
                BindingInfo(
                    binding.name,
                    binding.type or "",
                    BindingDirection(binding.direction).name.lower(),
                )
                for binding in self.function.get_bindings()
            ),
            http=self.http,
            http_output=self.http_output,
            durable_name=self.durable_name,
            durable_clients=dict(self.durable_clients),
            timer=self.timer,
        )


@dataclass
class AppInfo:
    """The app as the host knows it: the worker's metadata, validated, with the HTTP routes."""

    functions: list[FunctionInfo]
    """In the host's order: by name, ignoring case (``FunctionMetadataManager``)."""
    routes: list[Route]

    @property
    def uses_durable(self) -> bool:
        return _uses_durable(self.functions)


def _uses_durable(functions: Iterable[FunctionInfo | IndexedFunction]) -> bool:
    return any(
        f.trigger_type in (ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER) or f.durable_clients
        for f in functions
    )


@dataclass
class AppIndex:
    """Both halves in one process: the worker's functions and the host's routes."""

    app: FunctionRegister
    script_path: Path
    functions: list[IndexedFunction]
    """In the host's order: by name, ignoring case (``FunctionMetadataManager``)."""
    routes: list[Route]

    @property
    def uses_durable(self) -> bool:
        return _uses_durable(self.functions)

    def function(self, name: str) -> IndexedFunction:
        return next(f for f in self.functions if f.name == name)


# -- loading -------------------------------------------------------------------------------------


def import_app(app_dir: Path, script_file: str) -> tuple[types.ModuleType, FunctionRegister, Path]:
    """``loader.index_function_app``: import the script and find its one app instance."""
    if not _SCRIPT_FILE.match(script_file):
        raise AppIndexError(
            f"Invalid script file name: {script_file}. PYTHON_SCRIPT_FILE_NAME must be a Python "
            "file name (letters, digits, '_' and '-', ending in .py)."
        )
    script_path = app_dir / script_file
    if not script_path.is_file():
        raise AppIndexError(
            f"No {script_file} in {app_dir}: devhost runs apps of the Python v2 programming "
            "model (a function_app.py defining a FunctionApp)."
        )
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    module_name = pathlib.Path(script_file).stem
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise AppIndexError(
            f"Worker failed to index functions: importing {script_path} raised "
            f"{type(error).__name__}: {error}"
        ) from error
    found: FunctionRegister | None = None
    for name in dir(module):
        value = getattr(module, name, None)
        if isinstance(value, FunctionRegister):
            if found is not None:
                raise AppIndexError(
                    f"Worker failed to index functions: More than one {type(found).__name__} or "
                    "other top level function app instances are defined."
                )
            found = value
    if found is None:
        raise AppIndexError(
            "Worker failed to index functions: Could not find top level function app instances "
            f"in {script_file}."
        )
    return module, found, script_path


def index_app(
    app: FunctionRegister,
    script_path: Path,
    *,
    route_prefix: str,
    allow_list: Iterable[str] | None = None,
) -> AppIndex:
    """Index ``app`` like the worker, then validate it like the host."""
    indexed = index_functions(app, allow_list=allow_list)
    routes = validate_functions([entry.info() for entry in indexed], route_prefix=route_prefix)
    return AppIndex(app=app, script_path=script_path, functions=indexed, routes=routes)


def index_functions(
    app: FunctionRegister, *, allow_list: Iterable[str] | None = None
) -> list[IndexedFunction]:
    """The worker's half: ``get_functions()`` and ``add_indexed_function``, in the host's order
    (the host applies ``functions`` of host.json to what the worker reports)."""
    try:
        functions = app_functions(app)
    except ValueError as error:
        raise AppIndexError(f"Worker failed to index functions: ValueError: {error}") from error
    indexed: list[IndexedFunction] = []
    for function in functions:
        try:
            indexed.append(_index_function(function))
        except Exception as error:
            raise AppIndexError(
                f"Worker failed to index functions: {type(error).__name__}: {error}"
            ) from error
    if allow_list is not None:
        allowed = {name.casefold() for name in allow_list}
        indexed = [f for f in indexed if f.name.casefold() in allowed]
    indexed.sort(key=lambda f: f.name.casefold())
    return indexed


def validate_functions(functions: list[FunctionInfo], *, route_prefix: str) -> list[Route]:
    """The host's half: metadata validation and the HTTP routes."""
    errors: list[str] = []
    routes: list[Route] = []
    http_seen: dict[str, HttpTriggerInfo] = {}
    for entry in functions:
        try:
            _validate_host_metadata(entry)
            _validate_supported(entry)
            if entry.http is not None:
                routes.append(_http_route(entry, route_prefix, http_seen))
        except (ValueError, RouteTemplateError) as error:
            errors.append(f"{entry.name}: {error}")
    if errors:
        listed = "\n".join(f"  {line}" for line in errors)
        raise AppIndexError(f"The following {len(errors)} functions are in error:\n{listed}")
    return routes


def _index_function(function: Function) -> IndexedFunction:
    """``functions.Registry.add_indexed_function``."""
    user_function = function.get_user_function()
    name = function.get_function_name() or user_function.__name__
    params = dict(inspect.signature(user_function).parameters)
    annotations = typing.get_type_hints(user_function)
    bound: dict[str, Any] = {}
    has_explicit_return = has_implicit_return = False
    return_binding: str | None = None
    explicit_return_set = False
    for binding in function.get_bindings():
        binding_type = binding.type or ""
        direction = BindingDirection(binding.direction)
        if direction is BindingDirection.INOUT:
            raise FunctionLoadError(name, '"inout" bindings are not supported')
        if binding.name == "$return" and direction is not BindingDirection.OUT:
            raise FunctionLoadError(name, '"$return" binding must have direction set to "out"')
        if binding.name == "$return":
            has_explicit_return = True
        else:
            if has_implicit_output(binding_type):
                has_implicit_return = True
            bound[binding.name] = binding
        if not explicit_return_set:
            if binding.name == "$return":
                return_binding, explicit_return_set = binding_type, True
            elif has_implicit_output(binding_type):
                return_binding = binding_type
    requires_context = False
    if "context" in params and "context" not in bound:
        requires_context = True
        params.pop("context")
        annotation = annotations.get("context")
        if "context" in annotations and (
            not isinstance(annotation, type) or annotation.__name__ != "Context"
        ):
            raise FunctionLoadError(
                name,
                'the "context" parameter is expected to be of type azure.functions.Context, '
                f"got {annotation!r}",
            )
    missing = set(params) - set(bound)
    if missing:
        raise FunctionLoadError(
            name,
            f"the following parameters are declared in Python but not in function.json: "
            f"{missing!r}",
        )
    unused = set(bound) - set(params)
    if unused:
        raise FunctionLoadError(
            name,
            f"the following parameters are declared in function.json but not in Python: {unused!r}",
        )
    inputs, outputs = _check_parameters(name, params, bound, annotations)
    return_type = _check_return(
        name, annotations, has_explicit_return, has_implicit_return, return_binding
    )
    trigger = function.get_trigger()
    assert trigger is not None  # get_functions() guarantees one trigger
    http = None
    if trigger.type == HTTP_TRIGGER:
        methods = getattr(trigger, "methods", None)
        level = getattr(trigger, "auth_level", None)
        http = HttpTriggerInfo(
            param=trigger.name,
            route=getattr(trigger, "route", None) or name,
            methods=(
                tuple(str(getattr(m, "value", m)).upper() for m in methods) if methods else None
            ),
            auth_level=str(getattr(level, "value", level) or "function").casefold(),
        )
    timer = None
    if trigger.type == TIMER_TRIGGER:
        timer = TimerTriggerInfo(
            param=trigger.name,
            schedule=str(getattr(trigger, "schedule", None) or ""),
            run_on_startup=_flag(getattr(trigger, "run_on_startup", None), default=False),
            use_monitor=_flag(getattr(trigger, "use_monitor", None), default=True),
        )
    durable_name = None
    if trigger.type == ORCHESTRATION_TRIGGER:
        durable_name = getattr(trigger, "orchestration", None) or name
    elif trigger.type == ACTIVITY_TRIGGER:
        durable_name = getattr(trigger, "activity", None) or name
    clients = {
        binding.name: getattr(binding, "task_hub", None)
        for binding in function.get_bindings()
        if binding.type == DURABLE_CLIENT
    }
    return IndexedFunction(
        name=name,
        function=function,
        user_function=user_function,
        directory=str(pathlib.Path(inspect.getfile(user_function)).parent),
        trigger_type=trigger.type or "",
        trigger_param=trigger.name,
        is_async=inspect.iscoroutinefunction(user_function),
        requires_context=requires_context,
        has_return=has_explicit_return or has_implicit_return,
        input_types=inputs,
        output_types=outputs,
        return_type=return_type,
        http=http,
        durable_name=durable_name,
        durable_clients=clients,
        timer=timer,
    )


def _flag(value: Any, *, default: bool) -> bool:
    """A binding's boolean property: unset means the host's default."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().casefold() == "true"
    return bool(value)


def _check_parameters(
    name: str,
    params: dict[str, inspect.Parameter],
    bound: dict[str, Any],
    annotations: dict[str, Any],
) -> tuple[dict[str, ParamType], dict[str, ParamType]]:
    """``Registry.validate_function_params``: annotations against the binding converters."""
    inputs: dict[str, ParamType] = {}
    outputs: dict[str, ParamType] = {}
    for param in params.values():
        binding = bound[param.name]
        has_annotation = param.name in annotations
        annotation = annotations.get(param.name)
        is_param_out = has_annotation and _is_out(annotation)
        is_binding_out = BindingDirection(binding.direction) is BindingDirection.OUT
        pytype = annotation
        if is_param_out:
            arguments = typing.get_args(annotation)
            if len(arguments) != 1:
                raise FunctionLoadError(
                    name, f"binding {param.name} has invalid Out annotation {annotation!r}"
                )
            pytype = arguments[0]
        if has_annotation and not isinstance(pytype, type) and not _is_generic(pytype):
            raise FunctionLoadError(
                name, f"binding {param.name} has invalid non-type annotation {annotation!r}"
            )
        if is_binding_out and has_annotation and not is_param_out:
            raise FunctionLoadError(
                name,
                f'binding {param.name} is declared to have the "out" direction, but its '
                "annotation in Python is not a subclass of azure.functions.Out",
            )
        if not is_binding_out and is_param_out:
            raise FunctionLoadError(
                name,
                f'binding {param.name} is declared to have the "in" direction in '
                "function.json, but its annotation is azure.functions.Out in Python",
            )
        if has_annotation and pytype in (str, bytes) and not has_implicit_output(binding.type):
            binding_type = "generic"
        else:
            binding_type = binding.type
        if has_annotation:
            converter = get_binding(binding_type)
            checks = (
                converter.check_output_type_annotation(pytype)
                if is_param_out
                else converter.check_input_type_annotation(pytype)
            )
            if not checks:
                raise FunctionLoadError(
                    name,
                    f'type of {param.name} binding in function.json "{binding.type}" does not '
                    f'match its Python annotation "{getattr(pytype, "__name__", pytype)}"',
                )
        entry = ParamType(binding_type, pytype)
        (outputs if is_binding_out else inputs)[param.name] = entry
    return inputs, outputs


def _check_return(
    name: str,
    annotations: dict[str, Any],
    has_explicit_return: bool,
    has_implicit_return: bool,
    return_binding: str | None,
) -> ParamType | None:
    """``Registry.get_function_return_type``."""
    pytype = None
    if has_explicit_return and "return" in annotations:
        annotation = annotations["return"]
        if _is_generic(annotation) and _is_out(annotation):
            raise FunctionLoadError(name, "return annotation should not be azure.functions.Out")
        if not isinstance(annotation, type):
            raise FunctionLoadError(name, f"has invalid non-type return annotation {annotation!r}")
        assert return_binding is not None
        if not get_binding(return_binding).check_output_type_annotation(annotation):
            raise FunctionLoadError(
                name,
                f'Python return annotation "{annotation.__name__}" does not match binding type '
                f'"{return_binding}"',
            )
        pytype = annotation
    if has_implicit_return and "return" in annotations:
        pytype = annotations["return"]
    if has_explicit_return or has_implicit_return:
        assert return_binding is not None
        return ParamType(return_binding, pytype)
    return None


def _validate_host_metadata(entry: FunctionInfo) -> None:
    """``WorkerFunctionMetadataProvider.ValidateMetadata``/``ValidateBindings``."""
    if not _FUNCTION_NAME.match(entry.name) or entry.name.casefold() == "host":
        raise ValueError(f"'{entry.name}' is not a valid function name.")
    seen: set[str] = set()
    for binding in entry.bindings:
        if not _BINDING_NAME.match(binding.name or ""):
            raise ValueError(
                f"The binding name {binding.name} is invalid. Please assign a valid name to the "
                "binding."
            )
        assert binding.name is not None
        if binding.name.casefold() in seen:
            raise ValueError(
                f"Multiple bindings with name '{binding.name}' discovered. Binding names must "
                "be unique."
            )
        seen.add(binding.name.casefold())


def _validate_supported(entry: FunctionInfo) -> None:
    if entry.trigger_type not in SUPPORTED_TRIGGERS:
        raise ValueError(
            f"devhost does not support '{entry.trigger_type}' triggers (it serves "
            f"{', '.join(SUPPORTED_TRIGGERS)})."
        )
    for binding in entry.bindings:
        if binding.type in (entry.trigger_type, DURABLE_CLIENT):
            continue
        if binding.type == HTTP_OUTPUT and entry.trigger_type == HTTP_TRIGGER:
            continue
        raise ValueError(f"devhost does not support '{binding.type}' bindings ({binding.name}).")
    if entry.http is not None and entry.http.auth_level not in AUTH_LEVELS:
        raise ValueError(f"'{entry.http.auth_level}' is not a valid authorization level.")


def _http_route(entry: FunctionInfo, route_prefix: str, seen: dict[str, HttpTriggerInfo]) -> Route:
    """``ScriptHost.ValidateHttpFunction`` + ``HttpRoutesConflict`` + the route template."""
    http = entry.http
    assert http is not None
    reserved = http.route.strip("/").casefold()
    if reserved.startswith(("admin", "runtime")):
        raise ValueError("The specified route conflicts with one or more built in routes.")
    methods = frozenset(http.methods) if http.methods else None
    for other_name, other in seen.items():
        other_methods = frozenset(other.methods) if other.methods else None
        if routes_conflict(http.route, methods, other.route, other_methods):
            raise ValueError(
                f"The route specified conflicts with the route defined by function '{other_name}'."
            )
    template = build_template(route_prefix, http.route)
    seen[entry.name] = http
    return Route(entry.name, template, methods, http.auth_level)


def durable_client_hubs(index: AppInfo, environ: dict[str, str]) -> set[str]:
    """The task hubs that client bindings name explicitly (``%Setting%`` resolved)."""
    return {
        resolve_whole_setting(hub, environ)
        for entry in index.functions
        for hub in entry.durable_clients.values()
        if hub
    }

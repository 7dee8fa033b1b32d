"""The host's HTTP side on aiohttp: function routes, keys, the Durable webhooks, admin routes.

What the Functions host does with a request (``WebScriptHostHttpRoutesManager``,
``FunctionInvocationMiddleware``, ``ExceptionMiddleware``):

* routes are tried in function-name order, first match wins; a method outside the trigger's
  ``methods`` does not match, so it is a 404 like an unknown path;
* keys (``x-functions-key`` header first, else ``code``) are checked after routing: 401 with an
  empty body. Like ``func start``, keys are not enforced unless configured here
  (``DEVHOST_FUNCTION_KEY``; ``DEVHOST_MASTER_KEY``, defaulting to the function key, also opens
  ``admin`` routes and the Durable webhooks, which otherwise take the extension's system key);
* the function gets the request and answers as ``http_messages`` describes; one that raises (or
  returns nothing for ``$return``) is a 500 with an empty body.

Timer functions run on their schedules (``timers``); ``POST /admin/functions/{name}`` with
``{"input": "..."}`` and the master key runs one now (``FunctionsController.Invoke``: 202).

Functions run in the Python worker process (``language_worker``); the Durable engine runs here,
on this process's event loop, as the extension runs in the Functions host.

The extension's RPC endpoint listens on its own loopback port (``LocalHttpListener``: 17071,
else another free port); its public webhooks live under ``/runtime/webhooks/durabletask``.
Observability for benchmarks: ``GET /admin/devhost/instances[/{id}]`` (history length,
episodes, orchestrator CPU per instance, plus totals) and ``GET /admin/devhost/config``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar
from urllib.parse import unquote

from aiohttp import web
from azure.functions.meta import Datum

from .config import DevhostConfig
from .durable import DurableHost, InstanceNotFoundError, RpcServer
from .durable.server import RPC_PATH, WEBHOOK_PATH
from .http_messages import http_response, request_datum, request_headers, request_url
from .language_worker import InvocationError, LanguageWorker
from .loader import AppInfo, FunctionInfo
from .routing import find_route
from .timers import Timers
from .worker import InvocationResult

__all__ = ["DevHost", "EngineStartError", "run_until_signalled"]

PUBLIC_HOST_NAME = "localhost"
"""Core Tools advertises ``http://localhost:{port}`` whatever address it binds."""
MAX_REQUEST_BODY_SIZE = 104_857_600
"""Core Tools' Kestrel ``MaxRequestBodySize`` (``Constants.DefaultMaxRequestBodySize``)."""
WORKER_EXIT_WAIT = 5.0
"""Seconds to wait for the exit code of a worker process whose channel closed."""
KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"
ADMIN_PREFIX = "/admin/devhost"
ADMIN_FUNCTIONS = "/admin/functions/"
JSON_MEDIA_TYPES = ("application/json", "text/json")
INVOCATION_REASON = "This function was programmatically called via the host APIs."
HOMEPAGE = (
    "<!DOCTYPE html><html><head><title>Your Functions app is up and running</title></head>"
    "<body><h1>Your Functions app is up and running</h1><p>Served by devhost.</p></body></html>"
)


T = TypeVar("T")


class EngineStartError(RuntimeError):
    pass


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {_camel(key): _jsonable(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


def _supplied_key(request: web.BaseRequest) -> str | None:
    """``AuthenticationLevelHandler``: the header first, then the ``code`` query parameter."""
    header = request.headers.get(KEY_HEADER)
    if header is not None:
        return header
    return request.query.get(KEY_QUERY)


class DevHost:
    """The local Functions host for one indexed app (see the module docstring)."""

    def __init__(
        self,
        config: DevhostConfig,
        index: AppInfo,
        backend: DurableHost | None,
        public_socket: socket.socket,
        *,
        worker: LanguageWorker,
        rpc_socket: socket.socket | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.backend = backend
        self._public_socket = public_socket
        self._rpc_socket = rpc_socket
        self.port = int(public_socket.getsockname()[1])
        self.public_url = f"http://{PUBLIC_HOST_NAME}:{self.port}"
        self.rpc: RpcServer | None = None
        if backend is not None:
            assert rpc_socket is not None
            rpc_port = int(rpc_socket.getsockname()[1])
            self.rpc = RpcServer(
                backend,
                base_url=self.public_url,
                rpc_base_url=f"http://127.0.0.1:{rpc_port}{RPC_PATH}/",
            )
            backend.client_binding = self.rpc.binding_json
        self.worker = worker
        self.failure: str | None = None
        """Why the host stopped on its own (its worker process died), if it did."""
        self._stop: asyncio.Event | None = None
        self._worker_exit: asyncio.Task[None] | None = None
        self._runners: list[web.AppRunner] = []
        self._started = time.monotonic()
        self._functions = {entry.name: entry for entry in index.functions}
        self.timers = Timers.create(
            index.functions,
            os.environ,
            app_dir=config.app_dir,
            execute=self._run_timer,
            log=self._log,
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to the worker process, start the Durable engine on this loop, then serve."""
        await self.worker.connect(on_exit=self._worker_exited)
        if self.backend is not None:
            try:
                await self.backend.start()
            except Exception as error:
                raise EngineStartError(
                    f"the Durable engine could not start on storage connection "
                    f"'{self.config.storage_connection_name}' (task hub {self.config.hub_name}): "
                    f"{type(error).__name__}: {error}"
                ) from error
        public = web.Application(client_max_size=MAX_REQUEST_BODY_SIZE)
        public.router.add_route("*", "/{tail:[\\s\\S]*}", self._handle_public)
        await self._serve(public, self._public_socket)
        if self._rpc_socket is not None:
            rpc = web.Application(client_max_size=MAX_REQUEST_BODY_SIZE)
            rpc.router.add_route("*", "/{tail:[\\s\\S]*}", self._handle_rpc)
            await self._serve(rpc, self._rpc_socket)
        await self.timers.start()

    async def _serve(self, app: web.Application, sock: socket.socket) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        await web.SockSite(runner, sock, shutdown_timeout=5).start()

    async def stop(self) -> None:
        await self.timers.stop()  # a running timer may still call the Durable client
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        try:
            if self.backend is not None:
                await self.backend.stop()
        finally:
            await self.worker.close()

    def _worker_exited(self) -> None:
        self._worker_exit = asyncio.get_running_loop().create_task(self._stop_for_worker())

    async def _stop_for_worker(self) -> None:
        """The worker process died (its channel closed): report how, and stop."""
        try:
            code: int | None = await asyncio.to_thread(self.worker.process.wait, WORKER_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            code = None
        self.failure = f"the Python worker process exited unexpectedly (exit code {code})"
        self._log(f"{self.failure}; stopping", stream=sys.stderr)
        if self._stop is not None:
            self._stop.set()

    def print_functions(self) -> None:
        """``DisplayFunctionsInfoUtilities.DisplayFunctionsInfo``."""
        write = sys.stdout.write
        functions = self.index.functions
        if functions:
            write("\nFunctions:\n\n")
        prefix = self.config.route_prefix
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        for entry in functions:
            if entry.http is None:
                continue
            methods = f"[{','.join(entry.http.methods)}]" if entry.http.methods else ""
            write(f"\t{entry.name}: {methods} {self.public_url}/{prefix}{entry.http.route}\n\n")
        for entry in functions:
            if entry.http is None:
                write(f"\t{entry.name}: {entry.trigger_type}\n\n")
        sys.stdout.flush()

    def print_ready(self) -> None:
        details = [f"devhost ready: {self.public_url}"]
        if self.rpc is not None:
            details.append(f"task hub {self.config.hub_name}")
            details.append(f"Durable RPC {self.rpc.rpc_base_url}")
        if self.config.auth_enabled:
            details.append("function keys enforced")
        sys.stdout.write(" | ".join(details) + "\n")
        sys.stdout.flush()

    # -- dispatch ------------------------------------------------------------------------------

    async def _handle_public(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.rel_url.raw_path)
        folded = path.casefold()
        if folded == WEBHOOK_PATH.casefold() or folded.startswith(WEBHOOK_PATH.casefold() + "/"):
            return await self._handle_webhook(request, path)
        if folded == ADMIN_PREFIX or folded.startswith(ADMIN_PREFIX + "/"):
            return await self._admin(request, path[len(ADMIN_PREFIX) :].strip("/"))
        if folded == "/admin/host/status" and request.method == "GET":
            return self._host_status(request)
        if folded.startswith(ADMIN_FUNCTIONS) and request.method == "POST":
            return await self._invoke_on_demand(request, path[len(ADMIN_FUNCTIONS) :])
        found = find_route(self.index.routes, request.method, path)
        if found is None:
            if path == "/":  # ``HomepageMiddleware``, when no function handled the request
                return web.Response(status=200, text=HOMEPAGE, content_type="text/html")
            return web.Response(status=404)
        route, values = found
        if not self._authorized(request, route.auth_level):
            return web.Response(status=401)
        return await self._invoke(request, self._functions[route.function_name], values)

    def _authorized(self, request: web.BaseRequest, level: str) -> bool:
        config = self.config
        if level == "anonymous" or not config.auth_enabled:
            return True
        key = _supplied_key(request)
        if not key:
            return False
        if key == config.master_key:
            return True
        return level == "function" and key == config.function_key

    async def _invoke(
        self, request: web.Request, entry: FunctionInfo, values: dict[str, str]
    ) -> web.StreamResponse:
        body = await request.read() if (request.content_length or 0) > 0 else b""
        http = request_datum(request, body, values)
        assert entry.http is not None
        output = entry.http_output

        def respond(result: InvocationResult) -> web.StreamResponse:
            datum = result.return_value if output == "$return" else result.outputs.get(output or "")
            return http_response(datum, request.method)

        response = await self._execute(
            entry, {entry.http.param: http}, INVOCATION_REASON, finish=respond
        )
        return response if response is not None else web.Response(status=500)

    async def _run_timer(
        self, entry: FunctionInfo, timer_json: str, reason: str, details: dict[str, str]
    ) -> bool:
        """Invoke a timer function with its ``TimerInfo`` (``timers.Execute``)."""
        assert entry.timer is not None
        data = {entry.timer.param: Datum(timer_json, "json")}
        done = await self._execute(entry, data, reason, details=details, finish=lambda _: True)
        return done is not None

    async def _execute(
        self,
        entry: FunctionInfo,
        data: dict[str, Datum],
        reason: str,
        *,
        details: dict[str, str] | None = None,
        finish: Callable[[InvocationResult], T],
    ) -> T | None:
        """One invocation, logged as the host's function executor logs it; ``finish`` turns the
        worker's result into the caller's answer (a failure there fails the invocation).
        ``None`` when it failed (logged with the worker's exception)."""
        data = dict(data)
        for name in entry.durable_clients:
            data[name] = Datum(self._client_binding(), "string")
        started = time.monotonic()
        invocation = f"Functions.{entry.name}"
        self._log(f"Executing '{invocation}' (Reason='{reason}')")
        if details:
            self._log("Trigger Details: " + ", ".join(f"{k}: {v}" for k, v in details.items()))
        try:
            answer = finish(await self.worker.invoke(entry, data))
        except Exception as error:
            elapsed = (time.monotonic() - started) * 1000
            self._log(f"Executed '{invocation}' (Failed, Duration={elapsed:.0f}ms)")
            if isinstance(error, InvocationError):
                kind, message, stack = error.remote.kind, error.remote.message, error.remote.stack
            else:  # here, in the host (the response could not be turned into HTTP)
                kind, message, stack = type(error).__name__, str(error), ""
            self._log(
                f"System.Private.CoreLib: Exception while executing function: {invocation}. "
                f"Result: Failure\nException: {kind}: {message}\nStack: {stack}",
                stream=sys.stderr,
            )
            return None
        elapsed = (time.monotonic() - started) * 1000
        self._log(f"Executed '{invocation}' (Succeeded, Duration={elapsed:.0f}ms)")
        return answer

    async def _invoke_on_demand(self, request: web.Request, name: str) -> web.StreamResponse:
        """``POST /admin/functions/{name}`` (``FunctionsController.Invoke``): the master key,
        a JSON body ``{"input": ...}``, then 202 while the function runs in the background.
        devhost runs timer functions this way (the input is ignored, as the timer binding
        ignores it)."""
        if not self._authorized(request, "admin"):
            return web.Response(status=401)
        media_type = request.content_type.casefold()
        if not (media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")):
            return web.Response(status=415)
        try:
            invocation = json.loads(await request.read())
        except ValueError:
            invocation = None
        if not isinstance(invocation, dict) or any(
            isinstance(value, dict | list)
            for key, value in invocation.items()
            if key.casefold() == "input"
        ):
            return web.Response(status=400)
        entry = next(
            (f for f in self.index.functions if f.name.casefold() == name.casefold()), None
        )
        if entry is None:
            return web.Response(status=404)
        listener = self.timers.find(entry.name)
        if listener is None:
            return web.Response(
                status=501,
                text=f"devhost runs only timer functions through {ADMIN_FUNCTIONS}{{name}}; "
                f"'{entry.name}' is a {entry.trigger_type} function.",
            )
        self.timers.invoke_now(listener, INVOCATION_REASON)
        return web.Response(status=202)

    def _client_binding(self) -> str:
        if self.rpc is None:
            raise RuntimeError("the app has no Durable functions, so there is no durable client")
        return self.rpc.binding_json()

    def _log(self, message: str, stream: TextIO | None = None) -> None:
        target = stream or sys.stdout
        target.write(f"[{_now()}] {message}\n")
        target.flush()

    # -- Durable -------------------------------------------------------------------------------

    async def _handle_webhook(self, request: web.Request, path: str) -> web.StreamResponse:
        if self.rpc is None:
            return web.Response(status=404)
        if self.config.auth_enabled:
            key = _supplied_key(request)
            if not key or key not in (self.config.master_key, self.backend_system_key):
                return web.Response(status=401)
        target = WEBHOOK_PATH + path[len(WEBHOOK_PATH) :]
        if request.rel_url.raw_query_string:
            target += "?" + request.rel_url.raw_query_string
        return await self._rpc_call(request, target, request_url(request))

    @property
    def backend_system_key(self) -> str | None:
        return None if self.backend is None else self.backend.system_key

    async def _handle_rpc(self, request: web.Request) -> web.StreamResponse:
        assert self.rpc is not None
        return await self._rpc_call(request, str(request.rel_url), request_url(request))

    async def _rpc_call(self, request: web.Request, target: str, url: str) -> web.StreamResponse:
        assert self.rpc is not None
        body = await request.read()
        status, extra, payload = await self.rpc.handle_async(
            request.method,
            target,
            request_headers(request),
            body,
            check_key=False,
            request_url=url,
        )
        if payload is ...:
            return web.Response(status=status, headers=extra)
        return _json_response(status, payload, extra)

    # -- admin ---------------------------------------------------------------------------------

    def _host_status(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request, "admin"):
            return web.Response(status=401)
        return _json_response(
            200,
            {
                "id": self.config.hub_name,
                "state": "Running",
                "version": "devhost",
                "processUptime": int((time.monotonic() - self._started) * 1000),
            },
        )

    async def _admin(self, request: web.Request, rest: str) -> web.StreamResponse:
        """``GET /admin/devhost/config``, ``.../instances`` and ``.../instances/{id}``."""
        if not self._authorized(request, "admin"):
            return web.Response(status=401)
        if request.method != "GET":
            return web.Response(status=404)
        parts = rest.split("/") if rest else []
        if parts == ["config"]:
            return _json_response(200, self._config_view())
        if parts == ["activities"]:
            load = self.backend.activity_load if self.backend is not None else {}
            return _json_response(200, load)
        if not parts or parts[0] != "instances" or len(parts) > 2:
            return web.Response(status=404)
        if self.backend is None:
            return _json_response(200, {"instances": [], "totals": _totals([])})
        backend = self.backend
        if len(parts) == 2:
            try:
                info = await asyncio.to_thread(backend.instance, parts[1])
            except InstanceNotFoundError:
                return web.Response(status=404)
            return _json_response(200, _jsonable(info))

        def collect() -> list[Any]:
            found = []
            for snapshot in backend.snapshots():
                try:
                    found.append(backend.instance(snapshot.instance_id))
                except InstanceNotFoundError:
                    continue
            return found

        infos = [_jsonable(info) for info in await asyncio.to_thread(collect)]
        infos.sort(key=lambda info: str(info.get("instanceId")))
        return _json_response(200, {"instances": infos, "totals": _totals(infos)})

    def _config_view(self) -> dict[str, Any]:
        config = self.config
        return {
            "appDir": str(config.app_dir),
            "routePrefix": config.route_prefix,
            "hubName": config.hub_name,
            "maxConcurrentActivityFunctions": config.max_concurrent_activities,
            "maxConcurrentOrchestratorFunctions": config.max_concurrent_orchestrators,
            "storageConnectionName": config.storage_connection_name,
            "functionKeysEnforced": config.auth_enabled,
            "functions": [entry.name for entry in self.index.functions],
        }


def _totals(infos: list[dict[str, Any]]) -> dict[str, Any]:
    def total(key: str) -> float:
        return sum(float(info.get(key) or 0) for info in infos)

    return {
        "instances": len(infos),
        "historyEvents": int(total("historyLength")),
        "largestHistory": max(
            (int(info.get("peakHistoryLength") or 0) for info in infos), default=0
        ),
        "episodes": int(total("episodes")),
        "orchestratorCpuSeconds": round(total("orchestratorCpuSeconds"), 6),
    }


async def run_until_signalled(host: DevHost) -> None:
    """Start, print the functions, serve until SIGINT/SIGTERM, stop cleanly."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    host._stop = stop
    try:
        await host.start()
        host.print_functions()
        host.print_ready()
        await stop.wait()
        sys.stdout.write("Stopping devhost...\n")
        sys.stdout.flush()
    finally:
        await host.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)

"""The extension's HTTP API (``HttpApiHandler``) and ``durableClient`` binding.

``DurableOrchestrationClient`` talks to the extension's local RPC endpoint
(``http://127.0.0.1:{port}/durabletask/``, ``LocalHttpListener``); the management URLs it hands
out point at the public webhook path ``/runtime/webhooks/durabletask``. ``RpcServer.handle`` (or
``handle_async`` on an event loop) serves both paths transport-agnostically with
``HttpApiHandler``'s routes, status codes, headers and bodies (extension v2.13.7); an
``RpcServer`` built without ``base_url`` also owns a ``ThreadingHTTPServer`` on a free loopback
port serving them (the test engine's client binding). Handlers never run orchestration code:
they validate against published snapshots and enqueue commands (``DurableBackend.submit_*``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote, urlsplit

from ._history import (
    STATUS_BY_RUNTIME_STATUS,
    OrchestrationStatus,
    convert_to_jtoken,
    dumps,
    parse_datetime,
    parse_jtoken,
)
from ._status import COMPLETED_STATUSES, status_payload
from ._types import (
    InstanceExistsError,
    InstanceGoneError,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    InvalidOperationError,
    UnknownFunctionError,
)
from .backend import DurableBackend

RPC_PATH = "/durabletask"
WEBHOOK_PATH = "/runtime/webhooks/durabletask"
INSTANCE_ID_PLACEHOLDER = "INSTANCEID"
DEFAULT_PAGE_SIZE = 100
"""``OrchestrationStatusQueryCondition.PageSize``."""
CONTINUATION_HEADER = "x-ms-continuation-token"
FUNCTIONS_KEY_HEADER = "x-functions-key"

JsonResponse = tuple[int, dict[str, str], Any]
"""Status code, extra headers, and a JSON body (``...`` for an empty body)."""

_EMPTY = ...


@dataclass(frozen=True)
class _Poll:
    """A response that is not ready yet: wait ``delay`` seconds, then call ``resume``."""

    delay: float
    resume: Callable[[], _Outcome]


_Outcome = JsonResponse | _Poll


def _url_encode(value: str) -> str:
    """``WebUtility.UrlEncode``."""
    return quote_plus(value, safe="!*()")


def management_urls(
    host_url: str,
    instance_id: str,
    *,
    task_hub: str,
    connection_name: str,
    query: str,
) -> dict[str, str]:
    """``HttpApiHandler.GetClientResponseLinks`` (an ``HttpManagementPayload``)."""
    prefix = f"{host_url}{WEBHOOK_PATH}/instances/{_url_encode(instance_id)}"
    suffix = f"taskHub={_url_encode(task_hub)}&connection={_url_encode(connection_name)}"
    if query:
        suffix += f"&{query}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{prefix}?{suffix}",
        "sendEventPostUri": f"{prefix}/raiseEvent/{{eventName}}?{suffix}",
        "terminatePostUri": f"{prefix}/terminate?reason={{text}}&{suffix}",
        "rewindPostUri": f"{prefix}/rewind?reason={{text}}&{suffix}",
        "purgeHistoryDeleteUri": f"{prefix}?{suffix}",
        "restartPostUri": f"{prefix}/restart?{suffix}",
        "suspendPostUri": f"{prefix}/suspend?reason={{text}}&{suffix}",
        "resumePostUri": f"{prefix}/resume?reason={{text}}&{suffix}",
    }


def _accepted(command: Callable[[], object]) -> JsonResponse:
    """A client command on one instance: 202, or 404 when the instance is unknown and 410 once
    it completed (the webhook handlers' answers; the instance may change under the check)."""
    try:
        command()
    except InstanceNotFoundError:
        return 404, {}, _EMPTY
    except InstanceGoneError:
        return 410, {}, _EMPTY
    return 202, {}, _EMPTY


def _error(
    status: int, message: str, error: Exception | None = None, type_name: str = ""
) -> JsonResponse:
    """``HttpRequestMessage.CreateErrorResponse``: an ``HttpError`` body."""
    body: dict[str, Any] = {"Message": message}
    if error is not None:
        body.update(
            {"ExceptionMessage": str(error), "ExceptionType": type_name, "StackTrace": None}
        )
    return status, {}, body


def _internal_error(error: Exception) -> JsonResponse:
    """``HandleRequestAsync``'s catch-all for anything else a handler throws."""
    return _error(
        500, "Something went wrong while processing your request", error, type(error).__name__
    )


def _resume(poll: _Poll) -> _Outcome:
    try:
        return poll.resume()
    except Exception as error:
        return _internal_error(error)


def _bool_query(query: dict[str, list[str]], name: str) -> bool | None:
    """``bool.TryParse``: case-insensitive ``true``/``false``, anything else is absent."""
    values = query.get(name)
    if not values:
        return None
    text = values[0].strip().casefold()
    return True if text == "true" else False if text == "false" else None


def _text_query(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


class RpcServer:
    """The extension's client API for one backend.

    Without ``base_url`` it also runs a real HTTP server in a background thread (``start`` /
    ``stop``) on ``host:port``, and both URL bases point at it. With ``base_url`` (the public
    host URL, e.g. ``http://localhost:7071``) and ``rpc_base_url`` (the local RPC endpoint, with
    its trailing slash) the caller owns the transport and calls ``handle``/``handle_async``.
    """

    def __init__(
        self,
        engine: DurableBackend,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        base_url: str | None = None,
        rpc_base_url: str | None = None,
    ) -> None:
        self.engine = engine
        self._base_url = base_url.rstrip("/") if base_url is not None else None
        self._rpc_base_url = rpc_base_url
        self._httpd: ThreadingHTTPServer | None = None
        if base_url is None:
            self._httpd = ThreadingHTTPServer((host, port), _Handler)
            self._httpd.daemon_threads = True
            self._httpd.rpc = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def host_url(self) -> str:
        if self._base_url is not None:
            return self._base_url
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def rpc_base_url(self) -> str:
        if self._rpc_base_url is not None:
            return self._rpc_base_url
        return f"{self.host_url}{RPC_PATH}/"

    @property
    def required_query(self) -> str:
        key = self.engine.system_key
        return f"code={key}" if key else ""

    def start(self) -> None:
        if self._httpd is None:
            return
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="durable-engine-rpc", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def is_authorized(self, query: dict[str, list[str]], headers: dict[str, str]) -> bool:
        """The host's check for the extension's system-level webhooks: the system key in the
        ``x-functions-key`` header, or else in the ``code`` query parameter."""
        key = self.engine.system_key
        if not key:
            return True
        supplied = headers.get(FUNCTIONS_KEY_HEADER)
        if supplied is None:
            supplied = _text_query(query, "code")
        return supplied == key

    def binding_json(self) -> str:
        """``BindingHelper.DurableOrchestrationClientToString`` for the JSON (non-gRPC) protocol."""
        engine = self.engine
        base_url = f"{self.host_url}{WEBHOOK_PATH}"
        query = self.required_query
        creation_prefix = f"{base_url}/orchestrators/{{functionName}}[/{{instanceId}}]"
        payload = {
            "taskHubName": engine.task_hub,
            "connectionName": None,
            "creationUrls": {
                "createNewInstancePostUri": f"{creation_prefix}?{query}",
                "createAndWaitOnNewInstancePostUri": (
                    f"{creation_prefix}?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&{query}"
                ),
            },
            "managementUrls": management_urls(
                self.host_url,
                INSTANCE_ID_PLACEHOLDER,
                task_hub=engine.task_hub,
                connection_name=engine.connection_name,
                query=query,
            ),
            "baseUrl": base_url,
            "requiredQueryStringParameters": query,
            "rpcBaseUrl": self.rpc_base_url,
            "httpBaseUrl": None,
            "maxGrpcMessageSizeInBytes": None,
            "grpcHttpClientTimeout": None,
        }
        return dumps(payload)

    # -- HttpApiHandler.HandleRequestAsync --------------------------------------------------

    def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        check_key: bool = True,
        request_url: str | None = None,
    ) -> JsonResponse:
        """Serve one request (``target`` is the path and query); blocks while a
        start-and-wait request waits, so call it from a thread, not an event loop.

        ``check_key=False`` when the caller already authorized the request (the host's key
        check); ``request_url`` is the absolute URL the client used (the ``Location`` of a
        running instance's status), by default ``host_url + target``.
        """
        outcome = self._route(method, target, headers, body, check_key, request_url)
        while isinstance(outcome, _Poll):
            time.sleep(outcome.delay)
            outcome = _resume(outcome)
        return outcome

    async def handle_async(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        check_key: bool = True,
        request_url: str | None = None,
    ) -> JsonResponse:
        """``handle`` for an event loop: backend calls run in worker threads and waits sleep
        on the loop, so a long start-and-wait request holds no thread."""
        outcome = await asyncio.to_thread(
            self._route, method, target, headers, body, check_key, request_url
        )
        while isinstance(outcome, _Poll):
            await asyncio.sleep(outcome.delay)
            outcome = await asyncio.to_thread(_resume, outcome)
        return outcome

    def _route(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        check_key: bool,
        request_url: str | None,
    ) -> _Outcome:
        """``HttpApiHandler.HandleRequestAsync``."""
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        for base in (RPC_PATH, WEBHOOK_PATH):
            if path == base or path.startswith(base + "/"):
                break
        else:
            return 404, {}, _EMPTY
        if base == WEBHOOK_PATH and check_key and not self.is_authorized(query, headers):
            return 401, {}, _EMPTY
        url = request_url if request_url is not None else self.host_url + target
        rest = path[len(base) :].strip("/")
        segments = [unquote(segment) for segment in rest.split("/")] if rest else []
        head = segments[0].casefold() if segments else ""
        try:
            if head == "orchestrators" and 2 <= len(segments) <= 3:
                if method != "POST":
                    return 404, {}, _EMPTY
                instance_id = segments[2] if len(segments) == 3 else None
                return self._start(segments[1], instance_id, query, body)
            if head == "instances" and len(segments) <= 3:
                return self._instances(method, segments[1:], query, headers, url)
            if (
                head == "instances"
                and len(segments) == 4
                and segments[2].casefold() == "raiseevent"
            ):
                if method != "POST":
                    return 404, {}, _EMPTY
                return self._raise_event(segments[1], segments[3], headers, body)
            if head in ("entities", "makeprimary"):
                return 501, {}, {"Message": f"'{head}' is not supported by this Durable engine."}
        except Exception as error:
            return _internal_error(error)
        return 404, {}, _EMPTY

    def _instances(
        self,
        method: str,
        rest: list[str],
        query: dict[str, list[str]],
        headers: dict[str, str],
        request_url: str,
    ) -> JsonResponse:
        if not rest:
            if method == "GET":
                return self._list(query, headers)
            if method == "DELETE":
                return self._purge_with_filters(query)
            return 404, {}, _EMPTY
        if len(rest) == 1:
            if method == "GET":
                return self._status(rest[0], query, request_url)
            if method == "DELETE":
                return self._purge(rest[0])
            return 404, {}, _EMPTY
        if method != "POST":
            return 404, {}, _EMPTY
        operation = rest[1].casefold()
        if operation == "terminate":
            return self._terminate(rest[0], query)
        if operation in ("suspend", "resume"):
            return self._suspend_or_resume(rest[0], operation, query)
        if operation in ("rewind", "restart"):
            return 501, {}, {"Message": f"'{rest[1]}' is not supported by this Durable engine."}
        return 404, {}, _EMPTY

    def _start(
        self, name: str, instance_id: str | None, query: dict[str, list[str]], body: bytes
    ) -> _Outcome:
        input_text: str | None = None
        if body:
            text = body.decode("utf-8")
            try:
                # ``JsonConvert.DeserializeObject`` then DurableTask.Core re-serialises it.
                value = json.loads(text) if text.strip() else None
            except ValueError as error:
                return _error(
                    400, "Invalid JSON content", error, "Newtonsoft.Json.JsonReaderException"
                )
            input_text = None if value is None else dumps(value)
        try:
            started = self.engine.submit_start(name, instance_id or None, input_text)
        except (UnknownFunctionError, InvalidInstanceIdError) as error:
            return _error(
                400,
                "One or more of the arguments submitted is incorrect",
                error,
                "System.ArgumentException",
            )
        except InstanceExistsError as error:
            return _error(
                500,
                "Something went wrong while processing your request",
                error,
                "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException",
            )
        timeout = _seconds(query, "timeout")
        interval = _seconds(query, "pollingInterval")
        if timeout is not None and interval is not None:
            return self._wait_for_completion(started, timeout, interval, query)
        return self._check_status_response(started)

    def _check_status_response(self, instance_id: str) -> JsonResponse:
        """``CreateCheckStatusResponseMessage``: 202, ``Location``, ``Retry-After: 10``."""
        links = management_urls(
            self.host_url,
            instance_id,
            task_hub=self.engine.task_hub,
            connection_name=self.engine.connection_name,
            query=self.required_query,
        )
        body = {
            key: links[key]
            for key in (
                "id",
                "statusQueryGetUri",
                "sendEventPostUri",
                "terminatePostUri",
                "purgeHistoryDeleteUri",
                "restartPostUri",
                "suspendPostUri",
                "resumePostUri",
            )
        }
        headers = {"Location": links["statusQueryGetUri"], "Retry-After": "10"}
        return 202, headers, body

    def _wait_for_completion(
        self, instance_id: str, timeout: float, interval: float, query: dict[str, list[str]]
    ) -> _Outcome:
        """``WaitForCompletionOrCreateCheckStatusResponseAsync``, in real time: polls the
        instance every ``interval`` seconds until it completes or ``timeout`` passes."""
        if interval > timeout:
            return _error(400, "One or more of the arguments submitted is incorrect")
        deadline = time.monotonic() + timeout

        def check() -> _Outcome:
            snapshot = self.engine.snapshot(instance_id)
            if snapshot is not None and snapshot.status in COMPLETED_STATUSES:
                if snapshot.status is OrchestrationStatus.COMPLETED:
                    return 200, {}, parse_jtoken(snapshot.output)
                return self._status(instance_id, query, None)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return self._check_status_response(instance_id)
            return _Poll(min(remaining, interval), check)

        return check()

    def _status(
        self, instance_id: str, query: dict[str, list[str]], request_url: str | None
    ) -> JsonResponse:
        """``HandleGetStatusRequestAsync``: 202 while running (``Location``, ``Retry-After: 5``)."""
        snapshot = self.engine.snapshot(instance_id)
        if snapshot is None:
            return 404, {}, _EMPTY
        show_input = _bool_query(query, "showInput")
        payload = status_payload(
            snapshot,
            show_input=True if show_input is None else show_input,
            show_history=bool(_bool_query(query, "showHistory")),
            show_history_output=bool(_bool_query(query, "showHistoryOutput")),
        )
        if snapshot.status in COMPLETED_STATUSES:
            failed_as_500 = bool(_bool_query(query, "returnInternalServerErrorOnFailure"))
            code = 500 if snapshot.status is OrchestrationStatus.FAILED and failed_as_500 else 200
            return code, {}, payload
        extra = {"Retry-After": "5"}
        if request_url is not None:
            extra["Location"] = request_url
        return 202, extra, payload

    def _list(self, query: dict[str, list[str]], headers: dict[str, str]) -> JsonResponse:
        """``ListInstancesAsync`` with the query-string condition, ordered by instance id."""
        statuses = _runtime_statuses(query)
        created_from = _time_query(query, "createdTimeFrom")
        created_to = _time_query(query, "createdTimeTo")
        prefix = _text_query(query, "instanceIdPrefix")
        show_input = _bool_query(query, "showInput")
        top = _int_query(query, "top") or DEFAULT_PAGE_SIZE
        matches = sorted(
            (
                snapshot
                for snapshot in self.engine.snapshots()
                if (statuses is None or snapshot.status in statuses)
                and (created_from is None or snapshot.created_time >= created_from)
                and (created_to is None or snapshot.created_time <= created_to)
                and (prefix is None or snapshot.instance_id.startswith(prefix))
            ),
            key=lambda snapshot: snapshot.instance_id,
        )
        token = headers.get(CONTINUATION_HEADER, "")
        offset = int(token) if token.isdigit() else 0
        page = matches[offset : offset + top]
        next_token = str(offset + top) if offset + top < len(matches) else ""
        body = [
            status_payload(snapshot, show_input=True if show_input is None else show_input)
            for snapshot in page
        ]
        return 200, {CONTINUATION_HEADER: next_token}, body

    def _raise_event(
        self, instance_id: str, event_name: str, headers: dict[str, str], body: bytes
    ) -> JsonResponse:
        snapshot = self.engine.snapshot(instance_id)
        if snapshot is None:
            return 404, {}, _EMPTY
        if snapshot.status in COMPLETED_STATUSES:
            return 410, {}, _EMPTY
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().casefold()
        if media_type != "application/json":
            return _error(400, "Only application/json request content is supported")
        try:
            token = convert_to_jtoken(body.decode("utf-8"))
        except ValueError as error:
            return _error(400, "Invalid JSON content", error, "Newtonsoft.Json.JsonReaderException")
        return _accepted(
            lambda: self.engine.submit_raise_event(instance_id, event_name, dumps(token))
        )

    def _terminate(self, instance_id: str, query: dict[str, list[str]]) -> JsonResponse:
        reason = _text_query(query, "reason")
        return _accepted(lambda: self.engine.submit_terminate(instance_id, reason))

    def _suspend_or_resume(
        self, instance_id: str, operation: str, query: dict[str, list[str]]
    ) -> JsonResponse:
        """``HandleSuspendInstanceRequestAsync`` / ``HandleResumeInstanceRequestAsync``: 404 for
        an unknown instance, 410 once it completed, else 202. ``DurableClient`` refuses to
        suspend an instance that is not running or to resume one that is not suspended with an
        ``InvalidOperationException``, which the handler's catch-all turns into a 500."""
        snapshot = self.engine.snapshot(instance_id)
        if snapshot is None:
            return 404, {}, _EMPTY
        if snapshot.status in COMPLETED_STATUSES:
            return 410, {}, _EMPTY
        submit = self.engine.submit_suspend if operation == "suspend" else self.engine.submit_resume
        reason = _text_query(query, "reason")
        try:
            return _accepted(lambda: submit(instance_id, reason))
        except InvalidOperationError as error:
            return _error(
                500,
                "Something went wrong while processing your request",
                error,
                "System.InvalidOperationException",
            )

    def _purge(self, instance_id: str) -> JsonResponse:
        """``HandleDeleteHistoryByIdRequestAsync``: 404 unknown, else 200 and the count."""
        try:
            self.engine.submit_purge(instance_id)
        except InstanceNotFoundError:
            return 404, {}, _EMPTY
        return 200, {}, {"instancesDeleted": 1}

    def _purge_with_filters(self, query: dict[str, list[str]]) -> JsonResponse:
        """``HandleDeleteHistoryWithFiltersRequestAsync``: ``createdTimeFrom`` is required,
        ``createdTimeTo`` defaults to now, ``runtimeStatus`` filters; 404 when nothing matched."""
        created_from = _time_query(query, "createdTimeFrom")
        if created_from is None:
            return 400, {}, "Please provide value for 'createdTimeFrom' parameter."
        created_to = _time_query(query, "createdTimeTo") or datetime.now(UTC)
        statuses = _runtime_statuses(query)
        deleted = 0
        for snapshot in self.engine.snapshots():
            if created_from <= snapshot.created_time <= created_to and (
                statuses is None or snapshot.status in statuses
            ):
                try:
                    self.engine.submit_purge(snapshot.instance_id)
                except InstanceNotFoundError:
                    continue
                deleted += 1
        if deleted == 0:
            return 404, {}, _EMPTY
        return 200, {}, {"instancesDeleted": deleted}


def _seconds(query: dict[str, list[str]], name: str) -> float | None:
    text = _text_query(query, name)
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _int_query(query: dict[str, list[str]], name: str) -> int | None:
    text = _text_query(query, name)
    return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None


def _time_query(query: dict[str, list[str]], name: str) -> datetime | None:
    text = _text_query(query, name)
    try:
        return None if text is None else parse_datetime(text)
    except ValueError:
        return None


def _runtime_statuses(query: dict[str, list[str]]) -> set[OrchestrationStatus] | None:
    """``TryGetIEnumerableQueryParameterValue``: ``Enum.TryParse`` (case-sensitive) per value."""
    found: set[OrchestrationStatus] = set()
    for value in (item for text in query.get("runtimeStatus", []) for item in text.split(",")):
        value = value.strip()
        if value in STATUS_BY_RUNTIME_STATUS:
            found.add(STATUS_BY_RUNTIME_STATUS[value])
        elif value.lstrip("-").isdigit() and int(value) in OrchestrationStatus._value2member_map_:
            found.add(OrchestrationStatus(int(value)))
    return found or None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "DurableTestEngine"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; the tests assert on responses instead."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").casefold() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        server: RpcServer = self.server.rpc  # type: ignore[attr-defined]
        body = self._read_body()
        headers = {key.casefold(): value for key, value in self.headers.items()}
        try:
            status, extra, payload = server.handle(method, self.path, headers, body)
        except Exception as error:  # the extension's catch-all
            status, extra, payload = _error(
                500,
                "Something went wrong while processing your request",
                error,
                type(error).__name__,
            )
        data = b"" if payload is _EMPTY else dumps(payload).encode("utf-8")
        self.send_response(status)
        if payload is not _EMPTY:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

"""Invoking the app's registered functions the way the Python worker does, in process."""

from __future__ import annotations

import inspect
import json
from typing import Any
from urllib.parse import urlencode

import azure.functions as func

from devhost.durable import app_functions
from devhost.durable._worker import AsyncRunner
from function_app import app

BASE_URL = "http://localhost:7071"
# A client binding whose endpoints refuse connections: for routes that fail before using it.
UNREACHABLE_CLIENT = json.dumps(
    {
        "taskHubName": "evalruns",
        "creationUrls": {},
        "managementUrls": {},
        "baseUrl": "http://127.0.0.1:9/runtime/webhooks/durabletask",
        "requiredQueryStringParameters": "code=test",
        "rpcBaseUrl": "http://127.0.0.1:9/durabletask/",
        "httpBaseUrl": "http://127.0.0.1:9/runtime/webhooks/durabletask",
    }
)


# The Python worker runs every async function - HTTP functions and activities alike - on one
# long-lived loop, and the Durable client keeps a session bound to it: so do we, on the loop
# the in-process engine runs async activities on.
_WORKER_LOOP = AsyncRunner()


def registered_functions() -> dict[str, Any]:
    return {function.get_function_name(): function for function in app_functions(app)}


def call_http(
    name: str,
    method: str = "GET",
    path: str = "/",
    *,
    body: Any = None,
    raw_body: bytes | None = None,
    params: dict[str, str] | None = None,
    route_params: dict[str, str] | None = None,
    client: str | None = None,
) -> func.HttpResponse:
    """Call HTTP function `name` with a real HttpRequest, as the worker would."""
    function = registered_functions()[name]
    data = raw_body if raw_body is not None else b"" if body is None else json.dumps(body).encode()
    query = f"?{urlencode(params)}" if params else ""
    request = func.HttpRequest(
        method=method,
        url=f"{BASE_URL}{path}{query}",
        headers={"content-type": "application/json"},
        params=params or {},
        route_params=route_params or {},
        body=data,
    )
    kwargs: dict[str, Any] = {"req": request}
    if any(binding.type == "durableClient" for binding in function.get_bindings()):
        kwargs["client"] = client or UNREACHABLE_CLIENT
    result = function.get_user_function()(**kwargs)
    if inspect.isawaitable(result):
        result = _WORKER_LOOP.run(result)
    assert isinstance(result, func.HttpResponse)
    return result


def json_body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())

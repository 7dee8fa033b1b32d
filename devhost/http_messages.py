"""HTTP messages between the host and the worker: ``RpcHttp`` in, ``RawScriptResult`` out.

* In (``GrpcMessageConversionExtensions.ToRpcHttp``, the worker's ``Datum.from_typed_data`` and
  ``HttpRequestConverter``): the URL the client used (``{scheme}://{Host}{Path}{QueryString}``),
  header names lower-cased with repeated values joined by ``,`` (``StringValues.ToString``),
  query keys merged ignoring case with empty values dropped (the worker does not ask for
  nullable values), the route values, and the body as bytes only when the request carries a
  ``Content-Length`` (the worker asks for raw bytes).
* Out (``HttpResponseConverter.encode``, then ``HttpBinding.CreateResult``/``RawScriptResult``):
  status, headers with ``content-type`` taken apart (the library sets it from mimetype and
  charset), cookies through ``ResponseCookies.Append``, the body bytes. A ``str`` return is
  parsed the way the host parses it. No output at all is the host's ``OkResult``.
"""

from __future__ import annotations

import json
from http.cookies import Morsel, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote

from aiohttp import web
from azure.functions.meta import Datum

_HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


def request_datum(request: web.BaseRequest, body: bytes, route_values: dict[str, str]) -> Datum:
    """The HTTP trigger's data as the worker builds it from the host's ``RpcHttp``."""
    query_string = request.rel_url.raw_query_string
    return Datum(
        type="http",
        value={
            "method": Datum(request.method, "string"),
            "url": Datum(request_url(request), "string"),
            "headers": {k: Datum(v, "string") for k, v in request_headers(request).items()},
            "body": Datum(body, "bytes"),
            "params": {k: Datum(v, "string") for k, v in route_values.items()},
            "query": {k: Datum(v, "string") for k, v in request_query(query_string).items()},
        },
    )


def request_headers(request: web.BaseRequest) -> dict[str, str]:
    """``request.Headers``: lower-cased names, repeated values joined like ``StringValues``."""
    merged: dict[str, list[str]] = {}
    for key, value in request.headers.items():
        merged.setdefault(key.lower(), []).append(value)
    return {key: ",".join(values) for key, values in merged.items()}


def request_query(query_string: str) -> dict[str, str]:
    """``request.Query`` (keys case-insensitive, first spelling kept), without empty values."""
    merged: dict[str, tuple[str, list[str]]] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        entry = merged.setdefault(key.casefold(), (key, []))
        entry[1].append(value)
    query: dict[str, str] = {}
    for key, values in merged.values():
        text = ",".join(values)
        if text:
            query[key] = text
    return query


def request_url(request: web.BaseRequest) -> str:
    """``{scheme}://{Host}{Path}{QueryString}``: the URL as the client sent it."""
    url = f"{request.scheme}://{request.host}{request.rel_url.raw_path}"
    query = request.rel_url.raw_query_string
    return f"{url}?{query}" if query else url


def format_cookie(name: str, morsel: Morsel[str]) -> str:
    """``ResponseCookies.Append`` with the worker's cookie attributes (value URL-escaped,
    ``path=/`` unless given)."""
    parts = [f"{name}={quote(morsel.value, safe='')}"]
    if morsel["expires"]:
        parts.append(f"expires={morsel['expires']}")
    if morsel["max-age"]:
        parts.append(f"max-age={morsel['max-age']}")
    if morsel["domain"]:
        parts.append(f"domain={morsel['domain']}")
    parts.append(f"path={morsel['path'] or '/'}")
    if morsel["secure"]:
        parts.append("secure")
    if morsel["samesite"]:
        parts.append(f"samesite={str(morsel['samesite']).lower()}")
    if morsel["httponly"]:
        parts.append("httponly")
    return "; ".join(parts)


def http_response(datum: Datum | None, method: str) -> web.Response:
    """The host's response for the HTTP output binding's value (``RawScriptResult``)."""
    if datum is None:  # nothing bound to the output: ``OkResult``
        return web.Response(status=200)
    if datum.type == "string":
        return string_result(str(datum.value))
    if datum.type != "http":
        raise TypeError(f"unexpected HTTP output of type {datum.type!r}")
    value = datum.value
    status = int(value["status_code"].value)
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    content_type: str | None = None
    for name, header in value["headers"].items():
        text = "" if header.value is None else str(header.value)
        if name.lower() == "content-type":
            content_type = text
        elif name.lower() not in seen and name.lower() not in _HOP_BY_HOP:
            seen.add(name.lower())
            headers.append((name, text))
    for cookie in value.get("cookies") or []:
        assert isinstance(cookie, SimpleCookie)
        for name, morsel in cookie.items():
            headers.append(("Set-Cookie", format_cookie(name, morsel)))
    body_datum = value["body"]
    body = body_datum.value if body_datum is not None and body_datum.value is not None else b""
    if isinstance(body, str):
        body = body.encode("utf-8")
    if status in (204, 304) or method == "HEAD":
        body = b""
    response = web.Response(status=status, body=body if body else None)
    for name, text in headers:
        response.headers.add(name, text)
    if content_type is not None:
        response.headers["Content-Type"] = content_type
    elif not body:
        response.headers.pop("Content-Type", None)
    return response


def string_result(text: str) -> web.Response:
    """``HttpBinding.CreateResult`` for a ``str`` return: a JSON object with a ``body`` is a
    response object; other content is written as text (JSON containers re-indented)."""
    try:
        content: Any = json.loads(text)
    except ValueError:
        content = text
    if isinstance(content, dict):
        lowered = {key.casefold(): item for key, item in content.items()}
        if "body" in lowered:
            status = lowered.get("statuscode", lowered.get("status", 200))
            headers = lowered.get("headers") or {}
            body = lowered["body"]
            payload = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
            response = web.Response(status=int(status), text=payload)
            for name, item in headers.items():
                if name.lower() == "content-type":
                    response.content_type = str(item).split(";")[0]
                else:
                    response.headers[name] = str(item)
            return response
    if isinstance(content, dict | list):
        text = json.dumps(content, indent=2, ensure_ascii=False)
    elif isinstance(content, str):
        text = content
    response = web.Response(status=200, text=text)
    response.headers["Content-Type"] = "text/plain; charset=utf-8"
    return response

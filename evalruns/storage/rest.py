"""Point reads and single-entity writes over the Table REST API, without the SDK's pipeline.

Every job costs a transcript read and a transcript write, and every claim a ledger read and
write: measured on this project, the SDK spends about 2.7 ms of CPU on such a request where a
plain `http.client` request signed here spends about 0.4 ms (`bench/storage_bench.py`).
`LeanTable` does those four operations itself, with the SDK's exceptions, and hands every
other call (queries, transactions) to the SDK's `TableClient` it wraps. Connections are kept
alive, one per thread. Requests are signed with the account key (SharedKeyLite) or carry a
bearer token of the managed identity.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode, urlsplit

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, UpdateMode
from pydantic_core import from_json

API_VERSION = "2019-02-02"
STORAGE_SCOPE = "https://storage.azure.com/.default"
TIMEOUT_SECONDS = 30.0
# A token is renewed this long before it expires.
TOKEN_MARGIN_SECONDS = 300
_JSON = "application/json;odata=minimalmetadata"
# Query pages carry no annotations: what they select is read as plain JSON.
_JSON_NO_METADATA = "application/json;odata=nometadata"
_EDM = "@odata.type"
# The most entities the service returns in one query page.
MAX_PAGE_ENTITIES = 1000


class Continuation(NamedTuple):
    """Where the next page of a query starts (the service's continuation headers)."""

    partition: str
    row: str | None = None


@dataclass(frozen=True)
class QueryPage:
    entities: list[dict[str, Any]]
    next: Continuation | None
    # Bytes of the response body: what sizes the next page.
    size: int


class Signer:
    """The `Authorization` header of a request: SharedKeyLite, or a bearer token."""

    def __init__(
        self,
        account: str,
        key: str | None = None,
        credential: TokenCredential | None = None,
    ) -> None:
        self.account = account
        self._key = base64.b64decode(key) if key else None
        self._credential = credential
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def header(self, date: str, path: str) -> str:
        if self._key is not None:
            text = f"{date}\n/{self.account}{path}"
            digest = hmac.new(self._key, text.encode(), hashlib.sha256).digest()
            return f"SharedKeyLite {self.account}:{base64.b64encode(digest).decode()}"
        return f"Bearer {self._bearer()}"

    def _bearer(self) -> str:
        with self._lock:
            if self._token is None or self._token[1] - TOKEN_MARGIN_SECONDS < time.time():
                assert self._credential is not None
                token = self._credential.get_token(STORAGE_SCOPE)
                self._token = (token.token, float(token.expires_on))
            return self._token[0]


class LeanTable:
    """One table: point reads and single-entity writes done here, the rest by the SDK."""

    def __init__(self, sdk: TableClient, endpoint: str, signer: Signer) -> None:
        self.sdk = sdk
        self.table_name: str = sdk.table_name
        parts = urlsplit(endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._signer = signer
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sdk, name)

    # -- operations ----------------------------------------------------------------------------

    def get_entity(
        self, partition_key: str, row_key: str, select: str | list[str] | None = None
    ) -> TableEntity:
        query = ""
        if select:
            columns = select if isinstance(select, str) else ",".join(select)
            query = f"?$select={quote(columns, safe=',')}"
        status, headers, body = self._send("GET", self._key_path(partition_key, row_key), query)
        if status != 200:
            raise _error(status, body)
        return _entity(json.loads(body), headers)

    def create_entity(self, entity: Mapping[str, Any]) -> dict[str, str]:
        path = f"{self._base}/{self.table_name}"
        status, headers, body = self._send(
            "POST", path, "", _body(entity), {"Prefer": "return-no-content"}
        )
        if status not in (201, 204):
            raise _error(status, body, exists=status == 409)
        return {"etag": headers.get("etag", "")}

    def upsert_entity(
        self, entity: Mapping[str, Any], mode: UpdateMode = UpdateMode.MERGE
    ) -> dict[str, str]:
        return self._write(entity, mode, None)

    def update_entity(
        self,
        entity: Mapping[str, Any],
        mode: UpdateMode = UpdateMode.MERGE,
        *,
        etag: str | None = None,
        match_condition: MatchConditions | None = None,
    ) -> dict[str, str]:
        if match_condition == MatchConditions.IfNotModified and etag:
            return self._write(entity, mode, etag)
        return self._write(entity, mode, "*")

    def _write(
        self, entity: Mapping[str, Any], mode: UpdateMode, if_match: str | None
    ) -> dict[str, str]:
        method = "PUT" if mode == UpdateMode.REPLACE else "MERGE"
        path = self._key_path(entity["PartitionKey"], entity["RowKey"])
        extra = {"If-Match": if_match} if if_match else {}
        status, headers, body = self._send(method, path, "", _body(entity), extra)
        if status != 204:
            raise _error(status, body)
        return {"etag": headers.get("etag", "")}

    def query_page(
        self,
        filter: str,
        *,
        select: Sequence[str] = (),
        top: int = MAX_PAGE_ENTITIES,
        after: tuple[str, str | None] | None = None,
    ) -> QueryPage:
        """One page of a query, entities as plain JSON values (no EDM typing, no ETags): for
        scans that read a few string columns of many entities, where the SDK's paging and
        deserialisation cost more CPU than the rest of the work."""
        parameters = {"$filter": filter, "$top": str(max(1, min(top, MAX_PAGE_ENTITIES)))}
        if select:
            parameters["$select"] = ",".join(select)
        if after is not None:
            parameters["NextPartitionKey"] = after[0]
            if after[1] is not None:
                parameters["NextRowKey"] = after[1]
        path = f"{self._base}/{self.table_name}()"
        query = "?" + urlencode(parameters, quote_via=quote, safe="$,")
        status, headers, body = self._send("GET", path, query, extra={"Accept": _JSON_NO_METADATA})
        if status != 200:
            raise _error(status, body)
        partition = headers.get("x-ms-continuation-nextpartitionkey")
        row = headers.get("x-ms-continuation-nextrowkey")
        after_page = Continuation(partition, row) if partition else None
        return QueryPage(_values(body), after_page, len(body))

    # -- HTTP ----------------------------------------------------------------------------------

    def _key_path(self, partition_key: str, row_key: str) -> str:
        keys = f"PartitionKey='{_quote_key(partition_key)}',RowKey='{_quote_key(row_key)}'"
        return f"{self._base}/{self.table_name}({keys})"

    def _send(
        self,
        method: str,
        path: str,
        query: str,
        body: bytes | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        date = formatdate(usegmt=True)
        headers = {
            "x-ms-date": date,
            "x-ms-version": API_VERSION,
            "Accept": _JSON,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Authorization": self._signer.header(date, path),
            **(extra or {}),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path + query, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue  # a kept-alive connection the server closed: once more, anew
            found = {name.lower(): value for name, value in response.getheaders()}
            return response.status, found, data
        raise AssertionError("unreachable")

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=TIMEOUT_SECONDS)
            self._local.connection = connection
        return connection


def _values(body: bytes) -> list[dict[str, Any]]:
    """A query page's entities: parsed by pydantic-core (a third faster than `json` on pages
    of long strings), or by `json` for what only it accepts (an escaped lone surrogate)."""
    try:
        parsed = from_json(body)
    except ValueError:
        parsed = json.loads(body)
    values: list[dict[str, Any]] = parsed["value"]
    return values


def odata_string(value: str) -> str:
    """`value` as a string literal of a `$filter`."""
    return "'" + value.replace("'", "''") + "'"


def _quote_key(key: str) -> str:
    return quote(key.replace("'", "''"), safe="")


def _body(entity: Mapping[str, Any]) -> bytes:
    """The entity as OData JSON: typed properties carry their EDM type."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            out[name] = value
        elif isinstance(value, datetime):
            stamp = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out[name], out[name + _EDM] = stamp, "Edm.DateTime"
        elif isinstance(value, int):
            if -(2**31) <= value < 2**31:
                out[name] = value
            else:
                out[name], out[name + _EDM] = str(value), "Edm.Int64"
        elif isinstance(value, float):
            out[name], out[name + _EDM] = value, "Edm.Double"
        else:
            raise TypeError(f"property {name} has a type Table Storage cannot hold")
    return json.dumps(out, separators=(",", ":")).encode()


def _entity(raw: Mapping[str, Any], headers: Mapping[str, str]) -> TableEntity:
    """A read entity as the SDK gives it: EDM-typed values back to Python, annotations and
    the service's Timestamp left out, the ETag in `metadata`."""
    entity = TableEntity()
    for name, value in raw.items():
        if name.startswith("odata.") or name.endswith(_EDM) or name == "Timestamp":
            continue
        kind = raw.get(name + _EDM)
        if kind == "Edm.DateTime":
            entity[name] = datetime.fromisoformat(value)
        elif kind == "Edm.Int64":
            entity[name] = int(value)
        elif kind == "Edm.Double":
            entity[name] = float(value)
        else:
            entity[name] = value
    entity._metadata = {"etag": headers.get("etag", ""), "timestamp": None}
    return entity


def _error(status: int, body: bytes, exists: bool = False) -> HttpResponseError:
    """The SDK's exception for a failed request, with the service's message."""
    try:
        message = json.loads(body)["odata.error"]["message"]["value"]
    except (ValueError, KeyError, TypeError):
        message = body.decode(errors="replace")[:500]
    error_type: type[HttpResponseError] = HttpResponseError
    if status == 404:
        error_type = ResourceNotFoundError
    elif exists:
        error_type = ResourceExistsError
    elif status == 412:
        error_type = ResourceModifiedError
    error = error_type(message=f"{status}: {message}")
    error.status_code = status
    return error

"""Entity writes to Azure Table Storage as plain HTTP requests, for ``TableStore``.

The SDK's client pipeline (tracing, policies, per-request environment lookups for proxies and
``.netrc``) costs several times the request itself, and devhost's host process writes thousands
of rows a minute. The requests here are the ones ``azure-data-tables`` sends - the same URLs,
headers, JSON and multipart batch bodies (``TableClient.upsert_entity`` in replace mode,
``delete_entity``, ``submit_transaction``) - signed the same way (``SharedKey`` with the account
key, or the connection string's SAS token), on one ``aiohttp`` session that keeps its
connections. Reads, table creation and blobs stay on the SDK.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from email.utils import formatdate
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableServiceClient
from yarl import URL

Entity = dict[str, Any]
Operation = tuple[str, str, Entity | None]
"""``(partition key, row key, entity)``: an upsert (replace), or a delete when ``None``."""

_STATUS_LINE = re.compile(r"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ERROR_CODE = re.compile(r'"code"\s*:\s*"([^"]+)"')
REQUEST_TIMEOUT_SECONDS = 60
KEEPALIVE_SECONDS = 4.0
"""Below the 5 s after which Azurite (Node's HTTP server) closes an idle connection."""


class TableWriter:
    """Upserts, deletes and transactions on the tables of one account."""

    def __init__(self, service: TableServiceClient) -> None:
        self._endpoint = service.url.rstrip("/")
        self._base_path = urlsplit(self._endpoint).path
        self._api_version = service.api_version
        self._key: bytes | None = None
        self._account = service.account_name
        self._sas = ""
        credential = service.credential
        if isinstance(credential, AzureNamedKeyCredential):
            self._account = credential.named_key.name
            self._key = base64.b64decode(credential.named_key.key)
        elif isinstance(credential, AzureSasCredential):
            self._sas = credential.signature.lstrip("?")
        self._session: aiohttp.ClientSession | None = None
        self._date = ("", 0.0)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def upsert(self, table: str, partition_key: str, row_key: str, entity: Entity) -> None:
        body = entity_json(entity).encode("utf-8")
        status, text = await self._send(
            "PUT",
            _entity_path(table, partition_key, row_key),
            {
                "Content-Type": "application/json",
                "Accept": "application/json;odata=minimalmetadata",
                "DataServiceVersion": "3.0",
            },
            body,
        )
        if status not in (200, 204):
            raise _error(status, text, f"upserting into {table}")

    async def delete(self, table: str, partition_key: str, row_key: str) -> None:
        """Delete a row; one that is not there is not an error (as ``delete_entity``)."""
        status, text = await self._send(
            "DELETE",
            _entity_path(table, partition_key, row_key),
            {
                "Accept": "application/json;odata=minimalmetadata",
                "DataServiceVersion": "3.0",
                "If-Match": "*",
            },
            b"",
        )
        if status not in (200, 204, 404):
            raise _error(status, text, f"deleting from {table}")

    async def transaction(self, table: str, operations: list[Operation]) -> None:
        """One entity-group transaction (all in one partition); raises
        ``TableTransactionError`` when the service refuses it or any part of it."""
        batch = f"batch_{uuid.uuid4()}"
        body = transaction_body(
            self._endpoint,
            table,
            operations,
            batch=batch,
            api_version=self._api_version,
        )
        status, text = await self._send(
            "POST",
            "$batch",
            {
                "Content-Type": f"multipart/mixed; boundary={batch}",
                "Accept": "application/json",
                "DataServiceVersion": "3.0",
                "MaxDataServiceVersion": "3.0;NetFx",
            },
            body,
        )
        failed = [int(code) for code in _STATUS_LINE.findall(text) if not code.startswith("2")]
        if status != 202 or failed:
            code = _ERROR_CODE.search(text)
            raise TableTransactionError(
                message=f"transaction on {table} failed ({status}, parts {failed}): "
                f"{code.group(1) if code else text[:300]}"
            )

    async def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
                trust_env=False,
                auto_decompress=False,
            )
        url_path = f"{self._base_path}/{path}"
        headers = {**headers, "x-ms-version": self._api_version, "x-ms-date": self._now()}
        if self._key is not None:
            to_sign = "\n".join(
                (
                    method,
                    "",  # Content-MD5
                    headers.get("Content-Type", ""),
                    headers["x-ms-date"],
                    f"/{self._account}{url_path}",
                )
            )
            digest = hmac.new(self._key, to_sign.encode("utf-8"), hashlib.sha256).digest()
            headers["Authorization"] = (
                f"SharedKey {self._account}:{base64.b64encode(digest).decode()}"
            )
        url = f"{self._endpoint}/{path}"
        if self._sas:
            url = f"{url}?{self._sas}"
        try:
            async with self._session.request(
                method, URL(url, encoded=True), headers=headers, data=body or None
            ) as response:
                return response.status, (await response.read()).decode("utf-8", errors="replace")
        except (aiohttp.ClientError, TimeoutError) as error:  # the store retries these
            raise ServiceRequestError(
                f"{method} {path}: {type(error).__name__}: {error}"
            ) from error

    def _now(self) -> str:
        """``x-ms-date`` (RFC 1123), computed once a second."""
        now = time.time()
        text, second = self._date
        if int(now) != second:
            text = formatdate(now, usegmt=True)
            self._date = (text, int(now))
        return text


def _error(status: int, text: str, doing: str) -> HttpResponseError:
    code = _ERROR_CODE.search(text)
    return HttpResponseError(
        message=f"{doing} failed ({status}): {code.group(1) if code else text[:300]}"
    )


def url_key(key: str) -> str:
    """``_prepare_key`` then URL quoting, as the SDK builds entity URLs."""
    return quote(key.replace("'", "''"), safe="")


def _entity_path(table: str, partition_key: str, row_key: str) -> str:
    return f"{table}(PartitionKey='{url_key(partition_key)}',RowKey='{url_key(row_key)}')"


def transaction_body(
    base: str, table: str, operations: list[Operation], *, batch: str, api_version: str
) -> bytes:
    """The multipart body ``submit_transaction`` sends (written here, not by ``email``)."""
    changeset = f"changeset_{uuid.uuid4()}"
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    for index, (partition_key, row_key, entity) in enumerate(operations):
        url = f"{base}/{_entity_path(table, partition_key, row_key)}"
        head = (
            f"--{changeset}\r\nContent-Type: application/http\r\n"
            f"Content-Transfer-Encoding: binary\r\nContent-ID: {index}\r\n\r\n"
        )
        if entity is None:
            parts.append(
                f"{head}DELETE {url} HTTP/1.1\r\nx-ms-version: {api_version}\r\n"
                "DataServiceVersion: 3.0\r\nAccept: application/json;odata=minimalmetadata\r\n"
                "If-Match: *\r\n\r\n\r\n"
            )
        else:
            body = entity_json(entity)
            parts.append(
                f"{head}PUT {url} HTTP/1.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body.encode())}\r\nx-ms-version: {api_version}\r\n"
                f"DataServiceVersion: 3.0\r\nAccept: application/json\r\n\r\n{body}\r\n"
            )
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    return "".join(parts).encode("utf-8")


def entity_json(entity: Entity) -> str:
    """An entity as the SDK serialises it: ``Edm.Double`` marked, ``None`` left out."""
    body: dict[str, Any] = {}
    for name, value in entity.items():
        if value is None:
            continue
        if isinstance(value, float):
            body[f"{name}@odata.type"] = "Edm.Double"
        elif isinstance(value, int) and not isinstance(value, bool):
            if not -(2**31) <= value < 2**31:
                raise TypeError(f"{name}: {value} does not fit an Edm.Int32")
        elif not isinstance(value, str | bool):
            raise TypeError(f"{name}: {type(value).__name__} values are not stored")
        body[name] = value
    return json.dumps(body, ensure_ascii=False)

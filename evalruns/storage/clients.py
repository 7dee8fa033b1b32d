"""Table and Blob clients for one storage account, from a connection string or an identity.

The SDKs (and requests, and the identity library) are imported when a client is first made.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from functools import cached_property
from typing import TYPE_CHECKING

from evalruns.settings import AZURITE_CONNECTION, Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.pipeline.transport import RequestsTransport
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient, ContainerClient

    from evalruns.storage.rest import LeanTable, Signer

log = logging.getLogger(__name__)

# The well-known Azurite account, for `UseDevelopmentStorage=true`.
AZURITE_FULL_CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)

TABLES = ("Definitions", "Runs", "Jobs", "Transcripts", "Incidents")
# As many pooled connections as threads that call storage at once (Services.io).
CONNECTIONS_PER_HOST = 32


class StorageClients:
    """Creates tables and containers once per process, on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    @cached_property
    def _connection(self) -> str:
        connection = self.settings.storage_connection
        return AZURITE_FULL_CONNECTION if connection == AZURITE_CONNECTION else connection

    @cached_property
    def tables(self) -> TableServiceClient:
        from azure.data.tables import TableServiceClient

        if self._connection:
            return TableServiceClient.from_connection_string(
                self._connection, transport=_transport()
            )
        return TableServiceClient(
            endpoint=self._account_url("table"), credential=_identity(), transport=_transport()
        )

    @cached_property
    def blobs(self) -> BlobServiceClient:
        from azure.storage.blob import BlobServiceClient

        if self._connection:
            return BlobServiceClient.from_connection_string(
                self._connection, transport=_transport()
            )
        return BlobServiceClient(
            account_url=self._account_url("blob"), credential=_identity(), transport=_transport()
        )

    def _account_url(self, service: str) -> str:
        return f"https://{self.settings.storage_account_name}.{service}.core.windows.net"

    def table(self, name: str) -> LeanTable:
        """`name` is one of TABLES; the account's table is prefixed by the settings."""
        from evalruns.storage.rest import LeanTable

        full_name = f"{self.settings.table_prefix}{name}"
        client = self.tables.get_table_client(full_name)
        if full_name not in self._ready:
            with self._lock:
                if full_name not in self._ready:
                    self.tables.create_table_if_not_exists(full_name)
                    self._ready.add(full_name)
        return LeanTable(client, self.tables.url, self._signer)

    @cached_property
    def _signer(self) -> Signer:
        from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential

        from evalruns.storage.rest import Signer

        account = self.tables.account_name or self.settings.storage_account_name
        credential = self.tables.credential
        if isinstance(credential, AzureNamedKeyCredential):
            return Signer(account, key=credential.named_key.key)
        assert not isinstance(credential, AzureSasCredential), "SAS connections are not used"
        return Signer(account, credential=credential)

    def container(self, name: str) -> ContainerClient:
        from azure.core.exceptions import ResourceExistsError

        client = self.blobs.get_container_client(name)
        if name not in self._ready:
            with self._lock:
                if name not in self._ready:
                    with suppress(ResourceExistsError):
                        client.create_container()
                    self._ready.add(name)
        return client


def _transport() -> RequestsTransport:
    """HTTP transport without per-request environment lookups (~/.netrc, proxies, CA
    bundles): on the probe's hot path they cost about a fifth of every storage call."""
    import requests
    import requests.adapters
    from azure.core.pipeline.transport import RequestsTransport

    session = requests.Session()
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=CONNECTIONS_PER_HOST)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return RequestsTransport(session=session, session_owner=False)


def _identity() -> TokenCredential:
    """A managed identity (or developer login) credential, imported only when needed."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()

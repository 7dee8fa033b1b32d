"""Blobs: transcript documents too large for a table entity."""

from __future__ import annotations

import json
from typing import Any

from azure.storage.blob import ContainerClient, ContentSettings


class DocumentBlobs:
    """JSON documents under deterministic names, so a retried write overwrites itself."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    def put(self, name: str, document: dict[str, Any]) -> None:
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        self._container.upload_blob(
            name,
            data,
            overwrite=True,
            content_settings=ContentSettings(content_type="application/json"),
        )

    def get(self, name: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.read(name))
        return loaded

    def read(self, name: str) -> bytes:
        """The document's JSON as stored."""
        data: bytes = self._container.download_blob(name).readall()
        return data

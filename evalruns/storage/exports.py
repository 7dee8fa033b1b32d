"""Export files in a private container, written as staged blocks and read through SAS links."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings

from evalruns.storage.sas import CSV_CONTENT_TYPE


class ExportBlobs:
    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    @property
    def name(self) -> str:
        return str(self._container.container_name)

    def write(
        self,
        blob_name: str,
        chunks: Iterable[bytes],
        filename: str,
        metadata: Callable[[int], dict[str, str]],
    ) -> int:
        """Upload chunk by chunk (one block each) and commit: readers see all or nothing.

        `metadata` is asked for once every chunk is staged, given the size written.
        """
        blob = self._container.get_blob_client(blob_name)
        blocks: list[BlobBlock] = []
        size = 0
        for index, chunk in enumerate(chunks):
            block_id = base64.b64encode(f"{index:08d}".encode()).decode()
            blob.stage_block(block_id, chunk, length=len(chunk))
            blocks.append(BlobBlock(block_id=block_id))
            size += len(chunk)
        blob.commit_block_list(
            blocks,
            content_settings=ContentSettings(
                content_type=CSV_CONTENT_TYPE,
                content_disposition=f'attachment; filename="{filename}"',
            ),
            metadata=metadata(size),
        )
        return size

    def metadata(self, blob_name: str) -> dict[str, str] | None:
        """The metadata of an existing export, or None when there is none."""
        try:
            properties = self._container.get_blob_client(blob_name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return dict(properties.metadata)

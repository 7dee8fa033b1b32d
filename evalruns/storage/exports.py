"""Export files in a private container, written as staged blocks and read through SAS links.

An export stages its blocks as it goes and commits them at the end, so readers see a whole
file or the one before it. Block ids name the writer and the block's position: a retried
write stages the same ids again, and two writers of one blob never commit each other's
blocks. A commit discards every block it does not list, so of two writers at once the first
to commit wins and the other's commit finds its blocks gone (`BlocksGone`).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, ContainerClient, ContentSettings

from evalruns.storage.sas import CSV_CONTENT_TYPE

WRITER_ID_LENGTH = 8


class BlocksGone(Exception):
    """Another writer committed the blob meanwhile, discarding the blocks staged here."""


def block_id(writer: str, index: int) -> str:
    """Block `index` of `writer` (WRITER_ID_LENGTH characters): every id of a blob must have
    the same length."""
    if len(writer) != WRITER_ID_LENGTH:
        raise ValueError(f"a writer id has {WRITER_ID_LENGTH} characters")
    return base64.b64encode(f"{writer}{index:08d}".encode()).decode()


class ExportBlobs:
    def __init__(self, container: ContainerClient) -> None:
        self._container = container

    @property
    def name(self) -> str:
        return str(self._container.container_name)

    def stage(self, blob_name: str, block: str, data: bytes) -> None:
        self._container.get_blob_client(blob_name).stage_block(block, data, length=len(data))

    def commit(
        self,
        blob_name: str,
        blocks: Sequence[str],
        filename: str,
        metadata: dict[str, str],
    ) -> None:
        """Publish the staged `blocks` in order as the blob, served as `filename`."""
        try:
            self._container.get_blob_client(blob_name).commit_block_list(
                [BlobBlock(block_id=block) for block in blocks],
                content_settings=ContentSettings(
                    content_type=CSV_CONTENT_TYPE,
                    content_disposition=f'attachment; filename="{filename}"',
                ),
                metadata=metadata,
            )
        except HttpResponseError as error:
            if getattr(error, "error_code", None) == "InvalidBlockList":
                raise BlocksGone(blob_name) from error
            raise

    def metadata(self, blob_name: str) -> dict[str, str] | None:
        """The metadata of an existing export, or None when there is none."""
        try:
            properties = self._container.get_blob_client(blob_name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return dict(properties.metadata)

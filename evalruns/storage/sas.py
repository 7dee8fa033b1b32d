"""Read-only SAS links for export blobs.

Signed with the account key when the connection has one (Azurite, key-based accounts) and
with a user delegation key from the managed identity otherwise (Azure, shared keys disabled).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

# Signatures start a little in the past so a client clock behind ours still accepts them.
CLOCK_SKEW = timedelta(minutes=5)
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires_at: datetime


def read_link(
    service: BlobServiceClient,
    container: str,
    blob: str,
    filename: str,
    now: datetime,
    expiry: timedelta,
    content_type: str = CSV_CONTENT_TYPE,
) -> SignedLink:
    """A link that can only read one blob, until `now + expiry`, served as an attachment."""
    expires_at = now + expiry
    start = now - CLOCK_SKEW
    account_key: str | None = getattr(service.credential, "account_key", None)
    delegation_key = None if account_key else service.get_user_delegation_key(start, expires_at)
    token = generate_blob_sas(
        account_name=str(service.account_name),
        container_name=container,
        blob_name=blob,
        permission=BlobSasPermissions(read=True),
        start=start,
        expiry=expires_at,
        content_disposition=f'attachment; filename="{filename}"',
        content_type=content_type,
        protocol="https" if service.url.startswith("https") else None,
        account_key=account_key,
        user_delegation_key=delegation_key,
    )
    blob_url = service.get_blob_client(container, blob).url
    return SignedLink(f"{blob_url}?{token}", expires_at)

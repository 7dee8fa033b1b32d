"""Which key signs an export link: the account key when there is one, else a user delegation
key from the managed identity (Entra ID cannot run here, so the key service is stubbed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient, UserDelegationKey

from devhost.azurite import ACCOUNT_KEY
from evalruns.storage.sas import CLOCK_SKEW, read_link

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


class IdentityCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", int(NOW.timestamp()) + 3600)


class IdentityBlobService(BlobServiceClient):
    """The real client, with the user-delegation-key call answered locally."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Per instance: a class-level list would carry one test's requests into the next.
        self.requested: list[tuple[datetime, datetime]] = []

    def get_user_delegation_key(  # type: ignore[override]
        self, key_start_time: datetime, key_expiry_time: datetime, **kwargs: Any
    ) -> UserDelegationKey:
        self.requested.append((key_start_time, key_expiry_time))
        key = UserDelegationKey()
        key.signed_oid = "11111111-2222-3333-4444-555555555555"
        key.signed_tid = "66666666-7777-8888-9999-000000000000"
        key.signed_start = key_start_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_expiry = key_expiry_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        key.signed_service = "b"
        key.signed_version = "2025-01-05"
        key.value = ACCOUNT_KEY
        return key


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlparse(url).query).items()}


def test_identity_signs_with_a_user_delegation_key_over_https_only() -> None:
    service = IdentityBlobService(
        "https://evalruns.blob.core.windows.net", credential=IdentityCredential()
    )
    link = read_link(service, "exports", "run/final/a.csv", "a.csv", NOW, HOUR)
    signed = query(link.url)
    assert signed["skoid"] == "11111111-2222-3333-4444-555555555555"
    assert signed["sp"] == "r" and signed["spr"] == "https"
    assert signed["rscd"] == 'attachment; filename="a.csv"'
    assert service.requested == [(NOW - CLOCK_SKEW, NOW + HOUR)]
    assert link.expires_at == NOW + HOUR
    assert link.url.startswith("https://evalruns.blob.core.windows.net/exports/run/final/a.csv?")


def test_account_key_signs_without_asking_for_a_delegation_key() -> None:
    service = IdentityBlobService.from_connection_string(
        "DefaultEndpointsProtocol=https;AccountName=evalruns;"
        f"AccountKey={ACCOUNT_KEY};EndpointSuffix=core.windows.net"
    )
    signed = query(read_link(service, "exports", "b.csv", "b.csv", NOW, HOUR).url)
    assert "skoid" not in signed and signed["sig"]
    assert service.requested == []
    assert ACCOUNT_KEY not in read_link(service, "exports", "b.csv", "b.csv", NOW, HOUR).url

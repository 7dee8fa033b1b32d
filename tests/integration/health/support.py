"""Helpers for the health tests: fake keys to look for, dead and silent ports, fresh caches."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import azure.functions as func
import pytest

from evalruns.services import health

# Long enough to be redacted, distinctive enough that finding one in a body means it leaked.
OPENAI_KEY = "sk-health-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-health-0123456789abcdef"
GEMINI_KEY = "AIza-health-0123456789abcdef"
AZURE_KEY = "azure-health-0123456789abcdef"
FAKE_KEYS = (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, AZURE_KEY)


@pytest.fixture(autouse=True)
def fresh_provider_cache() -> Iterator[None]:
    """Provider results are cached per process: each test starts and ends without them."""
    health.clear_provider_cache()
    yield
    health.clear_provider_cache()


@contextmanager
def refused_port() -> Iterator[int]:
    """A local port that refuses connections for as long as the block runs (bound, not
    listening, so no other process can take it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@contextmanager
def silent_port() -> Iterator[int]:
    """A local port that accepts connections (in the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def storage_connection(port: int) -> str:
    """The Azurite account's connection string with every endpoint on `port`."""
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
        "KBHBeksoGMGw==;"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )


def assert_no_secret(response: func.HttpResponse | str, *secrets: str) -> None:
    text = response if isinstance(response, str) else response.get_body().decode()
    for secret in secrets or FAKE_KEYS:
        assert secret not in text
    assert "AccountKey" not in text and "Eby8vdM02xNOcqFlqUwJPLl" not in text


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())

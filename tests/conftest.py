"""Shared fixtures: one Azurite per test session, and services bound to it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from evalruns.services import Services, reset_services
from evalruns.settings import Settings
from tests.support.azurite import Azurite, running_azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with running_azurite() as instance:
        yield instance


def make_services(azurite: Azurite, **overrides: object) -> Services:
    """Services on the session's Azurite with tables and containers of their own."""
    suffix = uuid.uuid4().hex[:10]
    settings = Settings.model_validate(
        {
            "storage_connection": azurite.connection_string,
            "table_prefix": f"t{suffix}",
            "exports_container": f"exports-{suffix}",
            "spill_container": f"content-{suffix}",
            **overrides,
        }
    )
    return Services(settings)


@pytest.fixture
def services(azurite: Azurite) -> Iterator[Services]:
    """Fresh storage for one test, installed as the process's services (for function code)."""
    instance = make_services(azurite)
    reset_services(instance)
    yield instance
    reset_services(None)

"""Shared fixtures: one Azurite per test session, services bound to it, and the app on the
in-process Durable engine."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import function_app
from devhost.azurite import Azurite, running_azurite
from devhost.durable import DurableEngine, running_engine
from evalruns.providers.mock import MockProvider
from evalruns.services import Services, reset_services
from evalruns.settings import Settings
from tests.support.runs import SUMMARISER


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


@pytest.fixture
def configure(azurite: Azurite) -> Iterator[Callable[..., Services]]:
    """Install services with setting overrides (mock faults, caps...) for one test. The status
    is read afresh by every probe (no cache), so a pause takes effect with no wait."""

    def install(**overrides: Any) -> Services:
        settings = {"summariser_model": SUMMARISER, "status_cache_seconds": 0, **overrides}
        installed = make_services(azurite, **settings)
        reset_services(installed)
        return installed

    MockProvider.calls.clear()
    yield install
    reset_services(None)


@pytest.fixture
def engine() -> Iterator[DurableEngine]:
    """The evalruns app on the in-process Durable engine (activities run for real)."""
    with running_engine(function_app.app) as instance:
        yield instance

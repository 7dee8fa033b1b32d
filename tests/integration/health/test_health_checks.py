"""The health checks as library calls: storage on Azurite and on ports that refuse or never
answer, provider checks against fake servers (timeouts, redaction), the queue over scripted
instance listings, and the worker's warnings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from devhost.azurite import Azurite
from evalruns.providers.catalog import load_catalog
from evalruns.services import Services, health
from evalruns.services.health import OrchestrationInstance
from evalruns.settings import UNRESOLVED_KEY_VAULT_REFERENCE, Settings
from tests.conftest import make_services
from tests.integration.health.support import (
    OPENAI_KEY,
    by_id,
    refused_port,
    silent_port,
    storage_connection,
)
from tests.integration.health.support import fresh_provider_cache as fresh_provider_cache
from tests.support.fake_http import ScriptedResponse
from tests.support.fake_openai import FakeOpenAIServer, error_body
from tests.support.fake_openai import fake_openai as fake_openai

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CATALOG = load_catalog()


def openai_settings(base_url: str, **values: object) -> Settings:
    return Settings.model_validate(
        {"provider_env": {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": base_url}, **values}
    )


def openai_health(settings: Settings) -> dict[str, object]:
    report = asyncio.run(health.provider_health(settings, CATALOG))
    return by_id([item.to_json_dict() for item in report.items])["openai"]


# -- storage ---------------------------------------------------------------------------------


def test_storage_on_azurite_is_ok(azurite: Azurite) -> None:
    storage = asyncio.run(health.storage_health(make_services(azurite)))
    assert storage.status == "ok"
    assert storage.tables.ok and storage.blobs.ok
    assert storage.tables.error is None and storage.tables.latency_ms >= 0


def test_storage_that_never_answers_times_out_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "STORAGE_TIMEOUT_SECONDS", 0.3)
    with silent_port() as port:
        services = Services(Settings(storage_connection=storage_connection(port)))
        started = time.monotonic()
        storage = asyncio.run(health.storage_health(services))
    assert time.monotonic() - started < 3
    assert storage.status == "unreachable"
    for check in (storage.tables, storage.blobs):
        assert not check.ok
        assert check.error is not None and check.error.startswith("no answer")


def test_refused_storage_fails_at_once_without_retries() -> None:
    with refused_port() as port:
        services = Services(Settings(storage_connection=storage_connection(port)))
        started = time.monotonic()
        storage = asyncio.run(health.storage_health(services))
    assert time.monotonic() - started < 2
    assert storage.status == "unreachable"
    assert storage.tables.error == "cannot connect (ServiceRequestError)"


# -- providers -------------------------------------------------------------------------------


def test_a_provider_slower_than_the_check_timeout_is_reported_as_timeout(
    fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "PROVIDER_CHECK_TIMEOUT_SECONDS", 0.3)
    fake_openai.enqueue(ScriptedResponse(delay=10))
    started = time.monotonic()
    item = openai_health(openai_settings(fake_openai.base_url))
    assert time.monotonic() - started < 3
    assert item["connected"] is False
    assert item["errorCode"] == "TIMEOUT"
    # The provider's own classified timeout, naming the host, not the backstop's generic one.
    assert item["error"] == "openai: no response from 127.0.0.1 within 0.3s"


def test_a_check_that_outlasts_the_provider_timeout_is_abandoned_at_the_backstop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def hangs(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(health, "PROVIDER_CHECK_TIMEOUT_SECONDS", 0.1)
    monkeypatch.setattr(health, "check_provider", hangs)
    with refused_port() as port:
        item = openai_health(openai_settings(f"http://127.0.0.1:{port}"))
    assert item["errorCode"] == "TIMEOUT"
    assert item["error"] == "no answer within 0.2s"  # both phases' worth


def test_checks_run_in_parallel(fake_openai: FakeOpenAIServer) -> None:
    """Two slow providers take as long as one."""
    fake_openai.enqueue(ScriptedResponse(delay=0.5), ScriptedResponse(delay=0.5))
    settings = Settings.model_validate(
        {
            "provider_env": {
                "OPENAI_API_KEY": OPENAI_KEY,
                "OPENAI_BASE_URL": fake_openai.base_url,
                "EVALRUNS_LOCAL_OPENAI_BASE_URL": fake_openai.base_url,
            }
        }
    )
    started = time.monotonic()
    report = asyncio.run(health.provider_health(settings, CATALOG))
    assert time.monotonic() - started < 0.95
    items = by_id([item.to_json_dict() for item in report.items])
    assert items["openai"]["connected"] and items["local"]["connected"]
    assert len(fake_openai.requests) == 2


def test_errors_never_carry_a_key_even_when_the_server_echoes_it(
    fake_openai: FakeOpenAIServer,
) -> None:
    fake_openai.enqueue(
        ScriptedResponse(
            401,
            error_body(f"Incorrect API key provided: {OPENAI_KEY}.", code="invalid_api_key"),
        )
    )
    item = openai_health(openai_settings(fake_openai.base_url))
    assert item["errorCode"] == "AUTHENTICATION"
    assert OPENAI_KEY not in str(item)
    assert "Incorrect API key provided: [redacted]" in str(item["error"])


def test_an_unexpected_failure_is_reported_without_its_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"boom {OPENAI_KEY}")

    monkeypatch.setattr(health, "check_provider", broken)
    with refused_port() as port:
        item = openai_health(openai_settings(f"http://127.0.0.1:{port}"))
    assert item["errorCode"] == "ERROR"
    assert item["error"] == "the check failed (RuntimeError); see the logs"


# -- queue -----------------------------------------------------------------------------------


class ScriptedListing:
    """Instance listings by runtime status, as the Durable client would page them."""

    def __init__(
        self,
        pages: dict[str, list[OrchestrationInstance]],
        *,
        fail: Exception | None = None,
        delay: float = 0.0,
    ) -> None:
        self.pages = pages
        self.fail = fail
        self.delay = delay
        self.queried: list[str] = []

    async def instances(self, runtime_status: str) -> Sequence[OrchestrationInstance]:
        self.queried.append(runtime_status)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return self.pages.get(runtime_status, [])


def instance(
    instance_id: str, status: str, age: timedelta, name: str = "run_orchestrator"
) -> OrchestrationInstance:
    created = NOW - age
    return OrchestrationInstance(instance_id, name, status, created, created)


def test_queue_counts_ages_and_stuck_work() -> None:
    listing = ScriptedListing(
        {
            "Pending": [
                instance("p-new", "Pending", timedelta(minutes=1)),
                instance("p-old", "Pending", timedelta(minutes=7)),
                instance("p-edge", "Pending", timedelta(minutes=5)),
            ],
            "Running": [
                instance("r1", "Running", timedelta(hours=2)),
                instance("b1", "Running", timedelta(hours=3), name="batch_orchestrator"),
            ],
            "Completed": [
                instance(f"c{n}", "Completed", timedelta(days=1))
                for n in range(health.INSTANCE_PAGE_SIZE)
            ],
        }
    )
    queue = asyncio.run(health.queue_health(listing, now=NOW))

    assert sorted(listing.queried) == sorted(health.RUNTIME_STATUSES)  # one query per status
    assert queue.status == "stuck"
    assert queue.stuck_pending == 2  # at and beyond five minutes
    assert queue.instances["Pending"] == 3 and queue.instances["Running"] == 2
    assert queue.lower_bounds == ["Completed"]  # a full page: there may be more
    assert queue.by_name == {
        "run_orchestrator": {"Pending": 3, "Running": 1, "Completed": health.INSTANCE_PAGE_SIZE},
        "batch_orchestrator": {"Running": 1},
    }
    assert queue.oldest_pending is not None and queue.oldest_pending.instance_id == "p-old"
    assert queue.oldest_pending.age_seconds == 7 * 60
    assert queue.oldest_running is not None and queue.oldest_running.instance_id == "b1"
    assert queue.activity_backlog.available is False


def test_naive_created_times_are_read_as_utc() -> None:
    naive = OrchestrationInstance(
        "p", "run_orchestrator", "Pending", NOW.replace(tzinfo=None), None
    )
    queue = asyncio.run(
        health.queue_health(ScriptedListing({"Pending": [naive]}), now=NOW + timedelta(minutes=6))
    )
    assert queue.status == "stuck"
    assert queue.oldest_pending is not None and queue.oldest_pending.created_time == NOW


def test_a_failing_or_slow_durable_client_leaves_the_queue_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failed = asyncio.run(
        health.queue_health(ScriptedListing({}, fail=Exception("status code 500")), now=NOW)
    )
    assert failed.status == "unknown"
    assert failed.error == "the Durable client could not list instances: Exception: status code 500"

    monkeypatch.setattr(health, "QUEUE_TIMEOUT_SECONDS", 0.1)
    slow = asyncio.run(health.queue_health(ScriptedListing({}, delay=5), now=NOW))
    assert slow.status == "unknown"
    assert slow.error == "the Durable client could not list instances: no answer within 0.1s"


# -- workers ---------------------------------------------------------------------------------


def test_worker_warns_about_unresolved_key_vault_references() -> None:
    environ = {"ANTHROPIC_API_KEY": f"{UNRESOLVED_KEY_VAULT_REFERENCE}SecretUri=https://kv/x)"}
    workers = health.worker_health(Settings(storage_connection="x"), CATALOG, environ)
    assert workers.configured_keys == []
    assert any(
        warning.startswith("ANTHROPIC_API_KEY is a Key Vault reference that did not resolve")
        for warning in workers.warnings
    )
    assert "SecretUri" not in str(workers.to_json_dict())


def test_worker_warns_when_the_summariser_cannot_run() -> None:
    settings = Settings(storage_connection="x", summariser_model="gpt-4o-mini")
    warnings = health.worker_health(settings, CATALOG).warnings
    assert any("summariser model 'gpt-4o-mini' needs provider 'openai'" in w for w in warnings)

    unknown = Settings(storage_connection="x", summariser_model="no-such-model")
    assert any(
        w.startswith("EVALRUNS_SUMMARISER_MODEL")
        for w in health.worker_health(unknown, CATALOG).warnings
    )


def test_worker_warns_without_storage_settings() -> None:
    warnings = health.worker_health(Settings(), CATALOG).warnings
    assert any(warning.startswith("no storage configured") for warning in warnings)
    assert health.NO_PROVIDER_WARNING in warnings

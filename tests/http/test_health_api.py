"""The health routes over the registered functions: real Azurite, fake provider servers over
real HTTP, and the in-process Durable engine's client binding."""

from __future__ import annotations

import platform
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import function_app
from devhost.durable import DurableEngine, VirtualClock, running_engine
from evalruns import names
from evalruns.domain.orchestration import RunState
from evalruns.providers.catalog import load_catalog
from evalruns.services import Services, health, reset_services
from evalruns.settings import Settings
from tests.http.test_definitions_api import assert_problem, create, example
from tests.integration.health.support import (
    ANTHROPIC_KEY,
    AZURE_KEY,
    GEMINI_KEY,
    OPENAI_KEY,
    assert_no_secret,
    body,
    by_id,
    refused_port,
    storage_connection,
)
from tests.integration.health.support import (
    fresh_provider_cache as fresh_provider_cache,
)
from tests.support.fake_anthropic import FakeAnthropicServer
from tests.support.fake_anthropic import error_body as anthropic_error
from tests.support.fake_anthropic import fake_anthropic as fake_anthropic
from tests.support.fake_gemini import FakeGeminiServer
from tests.support.fake_gemini import fake_gemini as fake_gemini
from tests.support.fake_http import ScriptedResponse
from tests.support.fake_openai import (
    FakeAzureOpenAIServer,
    FakeOpenAIServer,
)
from tests.support.fake_openai import fake_azure_openai as fake_azure_openai
from tests.support.fake_openai import fake_openai as fake_openai
from tests.support.functions import UNREACHABLE_CLIENT, call_http, registered_functions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

HEALTH_FUNCTIONS = ("health", "health_providers", "health_queue", "health_workers")
CATALOG_IDS = list(load_catalog().providers)
PROVIDER_FIELDS = {
    "id",
    "name",
    "configured",
    "connected",
    "error",
    "errorCode",
    "lastChecked",
    "latencyMs",
}


def providers(refresh: bool = False) -> dict[str, Any]:
    params = {"refresh": "true"} if refresh else None
    response = call_http("health_providers", path="/api/health/providers", params=params)
    assert response.status_code == 200, response.get_body()
    assert_no_secret(response)
    result: dict[str, Any] = body(response)
    return result


def started_run(engine: DurableEngine) -> str:
    definition = create(example("shift_policy"))
    response = call_http(
        "runs_create",
        "POST",
        body={"definitionId": definition["id"], "models": ["mock-small"]},
        client=engine.client_binding(),
    )
    assert response.status_code == 202, response.get_body()
    return str(body(response)["run"]["id"])


# -- routes ----------------------------------------------------------------------------------


def test_probes_are_anonymous_and_details_need_the_key() -> None:
    functions = registered_functions()
    expected = {
        "health": "anonymous",
        "health_providers": "anonymous",
        "health_queue": "function",
        "health_workers": "function",
    }
    for name, level in expected.items():
        (trigger,) = [b for b in functions[name].get_bindings() if b.type == "httpTrigger"]
        assert str(trigger.get_dict_repr()["authLevel"].value) == level, name


def test_refresh_must_be_a_boolean(services: Services) -> None:
    response = call_http("health_providers", params={"refresh": "sometimes"})
    assert_problem(response, 400, "refresh")


# -- providers -------------------------------------------------------------------------------


def test_each_provider_state_is_reported_without_its_key(
    configure: Callable[..., Services],
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
) -> None:
    # The unauthorised answer quotes the key, as some APIs do: it must still not come back.
    fake_anthropic.enqueue(
        ScriptedResponse(
            401, anthropic_error("authentication_error", f"invalid x-api-key {ANTHROPIC_KEY}")
        )
    )
    with refused_port() as port:
        configure(
            provider_env={
                "OPENAI_API_KEY": OPENAI_KEY,
                "OPENAI_BASE_URL": fake_openai.base_url,
                "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
                "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
                "GEMINI_API_KEY": GEMINI_KEY,
                "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        report = providers()

    assert report["status"] == "degraded"
    items = by_id(report["items"])
    assert list(items) == CATALOG_IDS
    assert all(set(item) == PROVIDER_FIELDS for item in items.values())

    assert items["mock"] | {"lastChecked": None, "latencyMs": None} == {
        "id": "mock",
        "name": "Mock (built in)",
        "configured": True,
        "connected": True,
        "error": None,
        "errorCode": None,
        "lastChecked": None,
        "latencyMs": None,
    }
    assert items["openai"]["connected"] is True and items["openai"]["error"] is None

    anthropic = items["anthropic"]
    assert anthropic["configured"] is True and anthropic["connected"] is False
    assert anthropic["errorCode"] == "AUTHENTICATION" and "401" in anthropic["error"]
    assert "[redacted]" in anthropic["error"]

    google = items["google"]
    assert google["configured"] is True and google["connected"] is False
    assert google["errorCode"] == "NETWORK"

    xai = items["xai"]
    assert (xai["configured"], xai["connected"]) == (False, False)
    assert xai["error"] == "not configured: set XAI_API_KEY"
    assert xai["errorCode"] == "NOT_CONFIGURED" and xai["latencyMs"] is None
    assert items["azure-openai"]["error"] == (
        "not configured: set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_API_KEY"
    )
    assert items["local"]["error"] == "not configured: set EVALRUNS_LOCAL_OPENAI_BASE_URL"
    for item in items.values():
        datetime.fromisoformat(item["lastChecked"])

    # The checks were the cheapest authenticated calls: one model listing each.
    assert [(r.method, r.route) for r in fake_openai.requests] == [("GET", "/v1/models")]
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert [(r.method, r.route) for r in fake_anthropic.requests] == [("GET", "/v1/models")]


def test_every_api_family_connects_against_its_fake(
    configure: Callable[..., Services],
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
    fake_gemini: FakeGeminiServer,
    fake_azure_openai: FakeAzureOpenAIServer,
) -> None:
    configure(
        provider_env={
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": fake_openai.base_url,
            "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            "ANTHROPIC_BASE_URL": fake_anthropic.base_url,
            "GEMINI_API_KEY": GEMINI_KEY,
            "GOOGLE_GEMINI_BASE_URL": fake_gemini.base_url,
            "AZURE_OPENAI_API_KEY": AZURE_KEY,
            "AZURE_OPENAI_ENDPOINT": fake_azure_openai.base_url,
        }
    )
    report = providers()

    assert report["status"] == "ok"
    items = by_id(report["items"])
    for provider in ("mock", "openai", "anthropic", "google", "azure-openai"):
        assert items[provider]["connected"] is True, items[provider]
    for fake in (fake_openai, fake_anthropic, fake_gemini, fake_azure_openai):
        assert len(fake.requests) == 1 and fake.requests[0].method == "GET"


def test_results_are_cached_until_refreshed(
    configure: Callable[..., Services],
    fake_openai: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(provider_env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake_openai.base_url})
    first = by_id(providers()["items"])["openai"]
    assert len(fake_openai.requests) == 1

    assert by_id(providers()["items"])["openai"] == first
    # refresh=true right after a check reuses it: anonymous callers cannot hammer a provider.
    assert by_id(providers(refresh=True)["items"])["openai"] == first
    assert len(fake_openai.requests) == 1

    monkeypatch.setattr(health, "MIN_REFRESH_SECONDS", 0.0)
    refreshed = by_id(providers(refresh=True)["items"])["openai"]
    assert len(fake_openai.requests) == 2
    assert refreshed["lastChecked"] > first["lastChecked"]

    monkeypatch.setattr(health, "PROVIDER_CACHE_SECONDS", 0.0)  # five minutes have passed
    providers()
    assert len(fake_openai.requests) == 3


def test_a_failure_is_cached_too_and_refresh_sees_the_recovery(
    configure: Callable[..., Services],
    fake_openai: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_openai.enqueue(ScriptedResponse(503, b'{"error": {"message": "overloaded"}}'))
    configure(provider_env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake_openai.base_url})
    failed = by_id(providers()["items"])["openai"]
    assert failed["connected"] is False and failed["errorCode"] == "SERVER_ERROR"
    assert by_id(providers()["items"])["openai"] == failed

    monkeypatch.setattr(health, "MIN_REFRESH_SECONDS", 0.0)
    assert by_id(providers(refresh=True)["items"])["openai"]["connected"] is True
    assert len(fake_openai.requests) == 2


def test_changed_settings_are_checked_afresh(
    configure: Callable[..., Services], fake_openai: FakeOpenAIServer
) -> None:
    with refused_port() as port:
        configure(
            provider_env={
                "OPENAI_API_KEY": OPENAI_KEY,
                "OPENAI_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        assert by_id(providers()["items"])["openai"]["errorCode"] == "NETWORK"
    configure(provider_env={"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": fake_openai.base_url})
    assert by_id(providers()["items"])["openai"]["connected"] is True
    assert len(fake_openai.requests) == 1


# -- overall ---------------------------------------------------------------------------------


def test_healthy_with_storage_mock_and_an_idle_queue(
    services: Services, engine: DurableEngine
) -> None:
    response = call_http("health", path="/api/health", client=engine.client_binding())
    assert response.status_code == 200, response.get_body()
    report = body(response)
    assert report["status"] == "healthy"
    checks = report["checks"]
    assert set(checks) == {"storage", "providers", "queue", "workers"}
    assert checks["storage"]["status"] == "ok"
    assert checks["storage"]["tables"]["ok"] and checks["storage"]["blobs"]["ok"]
    assert checks["providers"] == {
        "status": "ok",
        "connected": ["mock"],
        "failing": {},
        "notConfigured": [p for p in CATALOG_IDS if p != "mock"],
    }
    assert checks["queue"]["status"] == "ok"
    assert health.NO_PROVIDER_WARNING in checks["workers"]["warnings"]
    datetime.fromisoformat(report["checkedAt"])


def test_degraded_when_a_configured_provider_is_not_connected(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    with refused_port() as port:
        configure(
            provider_env={
                "OPENAI_API_KEY": OPENAI_KEY,
                "OPENAI_BASE_URL": f"http://127.0.0.1:{port}",
            }
        )
        response = call_http("health", client=engine.client_binding())
    assert response.status_code == 200
    assert_no_secret(response)
    report = body(response)
    assert report["status"] == "degraded"
    assert report["checks"]["providers"]["failing"] == {"openai": "NETWORK"}
    assert report["checks"]["storage"]["status"] == "ok"


def test_storage_unreachable_is_a_503_problem_with_the_checks() -> None:
    with refused_port() as port:
        settings = Settings(storage_connection=storage_connection(port))
        reset_services(Services(settings))
        try:
            response = call_http("health", client=UNREACHABLE_CLIENT)
        finally:
            reset_services(None)
    problem = assert_problem(response, 503, "storage is unreachable", "tables", "blobs")
    assert_no_secret(response)
    storage = problem["checks"]["storage"]
    assert storage["status"] == "unreachable"
    for service in ("tables", "blobs"):
        assert storage[service]["ok"] is False
        assert storage[service]["error"].startswith("cannot connect")
    assert problem["checks"]["queue"]["status"] == "unknown"
    datetime.fromisoformat(problem["checkedAt"])


# -- queue -----------------------------------------------------------------------------------


def test_queue_counts_instances_by_runtime_status(
    configure: Callable[..., Services], engine: DurableEngine
) -> None:
    configure()
    completed = started_run(engine)
    engine.run_until_complete(completed)
    running = started_run(engine)
    assert engine.run_one() is not None  # the run's first replay: now Running
    pending = started_run(engine)

    response = call_http("health_queue", path="/api/health/queue", client=engine.client_binding())
    assert response.status_code == 200, response.get_body()
    queue = body(response)
    assert queue["status"] == "ok"
    assert queue["error"] is None
    # The instances as the engine's clients see them, to compare the report with exactly.
    by_name: dict[str, Counter[str]] = {}
    for snapshot in engine.snapshots():
        by_name.setdefault(snapshot.name, Counter())[snapshot.status.runtime_status] += 1
    lanes = by_name[names.LANE_ORCHESTRATOR]["Completed"]
    assert lanes >= 1 and set(by_name) == {names.RUN_ORCHESTRATOR, names.LANE_ORCHESTRATOR}
    counts = queue["instances"]
    assert set(counts) == set(health.RUNTIME_STATUSES)
    assert (counts["Pending"], counts["Running"]) == (1, 1)
    assert counts["Completed"] >= 2  # the run and its lanes
    assert counts["Completed"] == 1 + lanes
    assert counts["Failed"] == counts["Terminated"] == counts["Suspended"] == 0
    assert queue["byName"][names.RUN_ORCHESTRATOR] == {
        "Pending": 1,
        "Running": 1,
        "Completed": 1,
    }
    assert queue["byName"][names.LANE_ORCHESTRATOR]["Completed"] >= 1
    assert queue["byName"] == {name: dict(tally) for name, tally in by_name.items()}
    assert queue["lowerBounds"] == []
    assert queue["oldestPending"]["instanceId"] == pending
    assert queue["oldestPending"]["runtimeStatus"] == "Pending"
    assert queue["oldestRunning"]["instanceId"] == running
    assert queue["stuckPending"] == 0
    assert queue["activityBacklog"]["available"] is False
    assert "Durable client" in queue["activityBacklog"]["detail"]


@pytest.fixture
def engine_an_hour_ago() -> Iterator[DurableEngine]:
    """An engine whose clock (and so every instance's created time) is an hour behind."""
    clock = VirtualClock(datetime.now(UTC) - timedelta(hours=1))
    with running_engine(function_app.app, clock=clock) as instance:
        yield instance


def test_work_pending_too_long_is_stuck_and_degrades_health(
    services: Services, engine_an_hour_ago: DurableEngine
) -> None:
    engine = engine_an_hour_ago
    instance = engine.start(names.RUN_ORCHESTRATOR, RunState(run_id="r-stuck").to_json_dict())
    binding = engine.client_binding()

    queue = body(call_http("health_queue", client=binding))
    assert queue["status"] == "stuck"
    assert queue["stuckPending"] == 1
    assert queue["oldestPending"]["instanceId"] == instance
    assert queue["oldestPending"]["ageSeconds"] >= 3600 - 60
    assert queue["stuckAfterSeconds"] == 300

    report = body(call_http("health", client=binding))
    assert report["status"] == "degraded"
    assert report["checks"]["queue"]["stuckPending"] == 1


def test_queue_is_unknown_when_the_durable_client_cannot_answer(services: Services) -> None:
    queue = body(call_http("health_queue", client=UNREACHABLE_CLIENT))
    assert queue["status"] == "unknown"
    assert queue["error"].startswith("the Durable client could not list instances")
    assert queue["instances"] == {}

    report = body(call_http("health", client=UNREACHABLE_CLIENT))
    assert report["status"] == "degraded"


# -- workers ---------------------------------------------------------------------------------


def test_workers_warn_when_no_provider_key_is_configured(services: Services) -> None:
    response = call_http("health_workers", path="/api/health/workers")
    assert response.status_code == 200
    workers = body(response)
    assert workers["configuredKeys"] == [] and workers["configuredSettings"] == []
    assert workers["availableProviders"] == ["mock"]
    assert health.NO_PROVIDER_WARNING in workers["warnings"]
    assert workers["python"] == platform.python_version()
    assert workers["platform"]
    assert set(workers["packages"]) == set(health.PACKAGES)
    for package in ("azure-functions", "azure-functions-durable", "httpx", "pydantic"):
        assert workers["packages"][package], package


def test_workers_name_the_configured_variables_only(
    configure: Callable[..., Services], fake_openai: FakeOpenAIServer
) -> None:
    configure(
        provider_env={
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": fake_openai.base_url,
            "AZURE_OPENAI_API_KEY": AZURE_KEY,
        }
    )
    response = call_http("health_workers")
    assert_no_secret(response)
    assert fake_openai.base_url not in response.get_body().decode()
    workers = body(response)
    assert workers["configuredKeys"] == ["OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"]
    assert workers["configuredSettings"] == ["OPENAI_BASE_URL"]
    assert workers["availableProviders"] == ["mock", "openai"]
    assert health.NO_PROVIDER_WARNING not in workers["warnings"]
    assert "Azure OpenAI is not available: set AZURE_OPENAI_ENDPOINT" in workers["warnings"]
    assert fake_openai.requests == []  # worker health calls no provider

"""The evalruns app on the in-process Durable engine, with activities on a real Azurite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import function_app
from evalruns import names
from evalruns.domain.definitions import DefinitionInput
from evalruns.domain.orchestration import RunState
from evalruns.domain.runs import RunRequest
from evalruns.providers.mock import MockProvider
from evalruns.services import Services, reset_services
from evalruns.services.runs import create_run
from evalruns.storage.runs import StoredRun
from tests.conftest import make_services
from tests.support.azurite import Azurite
from tests.support.durable_replay import DurableEngine, running_engine

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def engine() -> Iterator[DurableEngine]:
    with running_engine(function_app.app) as instance:
        yield instance


@pytest.fixture
def configure(azurite: Azurite) -> Iterator[Callable[..., Services]]:
    """Install services with setting overrides (mock faults, batch sizes...) for one test."""

    def install(**overrides: Any) -> Services:
        services = make_services(azurite, **overrides)
        reset_services(services)
        return services

    MockProvider.calls.clear()
    yield install
    reset_services(None)


def grid_definition(*sizes: int) -> DefinitionInput:
    """A definition with one dimension per size (e.g. 5, 5, 5 → 125 scenarios)."""
    letters = "ABCDEFGH"
    return DefinitionInput(
        name="grid",
        preamble="Answer with a rating.",
        template=" ".join(f"[{letters[i]}]" for i in range(len(sizes))) + " Rate it.",
        dimensions=[
            {"name": letters[i], "values": [f"{letters[i]}{v}" for v in range(1, size + 1)]}
            for i, size in enumerate(sizes)
        ],
    )


def start_run(
    services: Services, engine: DurableEngine, definition: DefinitionInput, **request: Any
) -> StoredRun:
    created = services.definitions.create(definition)
    run = create_run(
        services,
        RunRequest.model_validate(
            {"definitionId": created.id, "models": ["mock-small"], **request}
        ),
    )
    engine.start(names.RUN_ORCHESTRATOR, RunState(run_id=run.id).to_json_dict(), run.id)
    return run

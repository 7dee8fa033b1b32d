"""Building runs for tests: grid definitions and runs started on the in-process engine."""

from __future__ import annotations

from typing import Any

from devhost.durable import DurableEngine
from evalruns import names
from evalruns.domain.definitions import DefinitionInput
from evalruns.domain.orchestration import RunState
from evalruns.domain.runs import RunRequest
from evalruns.providers.mock import MockProvider
from evalruns.services import Services
from evalruns.services.runs import create_run
from evalruns.storage.runs import StoredRun

# Orchestration tests summarise with a version no job uses, so provider calls can be told apart.
SUMMARISER = "mock-small@mock-small-20250101"
SUMMARISER_VERSION = "mock-small-20250101"


def probe_calls() -> int:
    """Calls the mock provider received for jobs (summaries left out)."""
    return sum(MockProvider.calls.values()) - MockProvider.calls[SUMMARISER_VERSION]


def summary_calls() -> int:
    return MockProvider.calls[SUMMARISER_VERSION]


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

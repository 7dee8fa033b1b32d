"""Starting, reading and listing runs, and the status changes the orchestration records."""

from __future__ import annotations

import logging
import uuid
from typing import Any, TypeVar

from evalruns.domain.base import utcnow
from evalruns.domain.orchestration import CustomStatus
from evalruns.domain.runs import (
    Actor,
    Progress,
    Run,
    RunConfig,
    RunModel,
    RunRequest,
    RunStatus,
    may_move,
)
from evalruns.domain.sampling import new_seed, sample_size
from evalruns.errors import FieldError, InvalidInput
from evalruns.providers.catalog import UnknownModelError
from evalruns.services.container import Services
from evalruns.storage.paging import Page
from evalruns.storage.runs import StoredRun

log = logging.getLogger(__name__)
RunT = TypeVar("RunT", bound=Run)


def create_run(services: Services, request: RunRequest) -> StoredRun:
    """Validate the request against the catalog and the definition, and store it PENDING."""
    definition = services.definitions.get(request.definition_id)
    models = resolve_models(services, request.models)
    if definition.scenario_count < 1:
        raise InvalidInput("the definition has no scenarios to run")
    seed = request.sample_seed if request.sample_seed is not None else new_seed()
    config = RunConfig(
        models=models,
        sample_percentage=request.sample_percentage,
        sample_seed=seed,
        samples_per_scenario=request.samples_per_scenario,
        temperature=request.temperature,
        max_tokens=request.max_tokens,
        scenario_count=sample_size(definition.scenario_count, request.sample_percentage),
    )
    now = utcnow()
    run = StoredRun(
        id=uuid.uuid4().hex,
        name=request.name or f"{definition.name} ({now:%Y-%m-%d %H:%M})",
        definition_id=definition.id,
        definition_name=definition.name,
        status=RunStatus.PENDING,
        config=config,
        progress=Progress.planned(config.jobs_by_model),
        created_at=now,
        updated_at=now,
        definition=definition,
        budget_usd=request.budget_usd,
    )
    services.runs.create(run)
    log.info("run %s created", run.id, extra={"run_id": run.id, "jobs": config.job_count})
    return run


def resolve_models(services: Services, refs: list[str]) -> list[RunModel]:
    """Each requested model resolved to a catalog version; every bad one named at once."""
    errors: list[FieldError] = []
    models: list[RunModel] = []
    for index, ref in enumerate(refs):
        try:
            resolved = services.catalog.resolve(ref)
        except UnknownModelError as exc:
            errors.append(FieldError(("body", "models", index), str(exc)))
            continue
        if not services.catalog.is_available(resolved.provider, services.settings):
            errors.append(
                FieldError(
                    ("body", "models", index),
                    f"model '{ref}' needs credentials for provider '{resolved.provider}', "
                    "which are not configured",
                )
            )
            continue
        if any(model.id == resolved.model_id for model in models):
            errors.append(
                FieldError(
                    ("body", "models", index),
                    f"model '{resolved.model_id}' is listed twice; a run takes each model once",
                )
            )
            continue
        models.append(
            RunModel(
                id=resolved.model_id,
                provider=resolved.provider,
                version=resolved.version,
                requested=ref,
                cost_input_per_million=resolved.cost_input_per_million,
                cost_output_per_million=resolved.cost_output_per_million,
            )
        )
    if errors:
        raise InvalidInput("; ".join(error.msg for error in errors), errors)
    return models


def with_live_progress(run: RunT, custom_status: Any) -> RunT:
    """The run with the orchestration's live progress (its custom status), when it has one."""
    status = CustomStatus.read(custom_status)
    if run.status.is_terminal or status is None:
        return run
    progress = Progress.model_validate(status.model_dump(exclude={"lanes"}))
    return run.model_copy(update={"progress": progress, "cost_usd": progress.cost_usd})


def list_runs(
    services: Services,
    limit: int,
    cursor: str | None,
    status: RunStatus | None,
    definition_id: str | None,
) -> Page[StoredRun]:
    return services.runs.list(limit, cursor, status, definition_id)


def move_run(
    services: Services,
    run_id: str,
    target: RunStatus,
    *,
    progress: Progress | None = None,
    error: str | None = None,
    reason: str | None = None,
) -> StoredRun:
    """The orchestration's move of a run to `target`, when its status allows it (DESIGN.md
    section 4), recording `progress` too. A move the status refuses (a user paused or
    cancelled meanwhile) changes nothing but the progress: the orchestration reads the status
    it gets back and follows it."""

    def change(run: StoredRun) -> StoredRun | None:
        if run.status.is_terminal:
            return None
        update: dict[str, Any] = {}
        now = utcnow()
        if may_move(run.status, target, Actor.ORCHESTRATION):
            update["status"] = target
            if target.is_terminal:
                update["completed_at"] = now
            if error is not None:
                update["error"] = error
            if target == RunStatus.PAUSED:
                update["pause_reason"] = reason
        if update.get("status", run.status) == RunStatus.RUNNING and run.started_at is None:
            update["started_at"] = now
        if progress is not None and progress != run.progress:
            update["progress"] = progress
            update["cost_usd"] = progress.cost_usd
        return run.model_copy(update=update) if update else None

    return services.runs.update(run_id, change)


def record_progress(services: Services, run_id: str, progress: Progress) -> StoredRun:
    """A progress snapshot of a live run (the list of runs shows it)."""

    def change(run: StoredRun) -> StoredRun | None:
        if run.status.is_terminal or progress == run.progress:
            return None
        return run.model_copy(update={"progress": progress, "cost_usd": progress.cost_usd})

    return services.runs.update(run_id, change)

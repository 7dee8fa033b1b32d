"""Every job a run can have, by ordinal, computed from the run's snapshot: nothing to store.

Ordinals run provider by provider (each provider's jobs form one range, claimed by its lanes
under its cap), then by sampled scenario, model and sample, so every model of a provider
progresses together. A re-run of failed jobs executes a *selection* of its ordinals; the rest
were carried over from its parent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from evalruns.domain.definitions import DefinitionInput
from evalruns.domain.expansion import scenario_at, scenario_id
from evalruns.domain.runs import RunConfig, RunModel
from evalruns.domain.sampling import sample_indices
from evalruns.domain.transcripts import Job, job_key


@dataclass(frozen=True)
class Group:
    """One provider's range of ordinals."""

    provider: str
    first: int
    models: tuple[RunModel, ...]
    size: int

    def __contains__(self, ordinal: int) -> bool:
        return self.first <= ordinal < self.first + self.size


@dataclass(frozen=True)
class JobSpace:
    run_id: str
    definition: DefinitionInput
    config: RunConfig
    selection: dict[str, list[int]] | None = None
    """Per provider, the ordinals to execute (a re-run of failed jobs); None: all of them."""

    @cached_property
    def scenarios(self) -> list[int]:
        """The sampled scenario positions, in expansion order."""
        config = self.config
        return sample_indices(
            self.definition.scenario_count, config.sample_percentage, config.sample_seed
        )

    @cached_property
    def groups(self) -> dict[str, Group]:
        by_provider: dict[str, list[RunModel]] = {}
        for model in self.config.models:
            by_provider.setdefault(model.provider, []).append(model)
        groups: dict[str, Group] = {}
        first = 0
        per_model = len(self.scenarios) * self.config.samples_per_scenario
        for provider, models in by_provider.items():
            size = per_model * len(models)
            groups[provider] = Group(provider, first, tuple(models), size)
            first += size
        return groups

    @property
    def size(self) -> int:
        return sum(group.size for group in self.groups.values())

    def count(self, provider: str) -> int:
        """Jobs of `provider` to execute."""
        if self.selection is not None:
            return len(self.selection.get(provider, []))
        return self.groups[provider].size

    def ordinal_of(self, provider: str, index: int) -> int:
        """The ordinal of `provider`'s `index`-th job to execute."""
        if self.selection is not None:
            return self.selection[provider][index]
        return self.groups[provider].first + index

    def _locate(self, ordinal: int) -> tuple[RunModel, int, int]:
        """The job's model, scenario position and sample."""
        for group in self.groups.values():
            if ordinal in group:
                samples = self.config.samples_per_scenario
                rest, sample = divmod(ordinal - group.first, samples)
                scenario, model = divmod(rest, len(group.models))
                return group.models[model], self.scenarios[scenario], sample + 1
        raise IndexError(f"run {self.run_id} has no job {ordinal}")

    def key(self, ordinal: int) -> str:
        """The job's key (its transcript's id), without expanding its scenario."""
        model, scenario, sample = self._locate(ordinal)
        return job_key(model.id, scenario_id(scenario + 1), sample)

    def job(self, ordinal: int) -> Job:
        model, position, sample = self._locate(ordinal)
        scenario = scenario_at(self.definition, position)
        return Job(
            run_id=self.run_id,
            ordinal=ordinal,
            key=job_key(model.id, scenario.id, sample),
            scenario_id=scenario.id,
            scenario_number=scenario.number,
            scenario_name=scenario.name,
            dimensions=scenario.dimensions,
            preamble=scenario.preamble,
            prompt=scenario.prompt,
            model=model,
            sample=sample,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )

"""Pure helpers used by the orchestrators: progress merging, the custom status, the final
status."""

from __future__ import annotations

import pytest

from evalruns.domain.orchestration import CustomStatus, custom_status, final_status, merge_progress
from evalruns.domain.runs import ModelProgress, Progress, RunStatus

# --- factories -------------------------------------------------------------------------------


def progress(total: int, **by_model: ModelProgress) -> Progress:
    return Progress.from_models(total, dict(by_model))


# --- merging progress ------------------------------------------------------------------------


def test_merge_progress_adds_a_batch_and_recomputes_the_summary() -> None:
    before = progress(
        10,
        a=ModelProgress(total=5, completed=2, cost_usd=0.1),
        b=ModelProgress(total=5, failed=1),
    )
    batch = Progress(
        by_model={
            "a": ModelProgress(completed=1, failed=1, cost_usd=0.2),
            "b": ModelProgress(completed=2),
        }
    )

    after = merge_progress(before, batch.by_model)

    assert after.total == 10
    assert after.by_model == {
        "a": ModelProgress(total=5, completed=3, failed=1, cost_usd=0.3),
        "b": ModelProgress(total=5, completed=2, failed=1),
    }
    assert (after.completed, after.failed, after.percent, after.cost_usd) == (5, 2, 70.0, 0.3)


def test_merge_progress_leaves_its_input_unchanged() -> None:
    before = progress(4, a=ModelProgress(total=4, completed=1))
    snapshot = before.model_copy(deep=True)

    merge_progress(before, {"a": ModelProgress(completed=3)})

    assert before == snapshot


def test_merge_progress_accepts_a_model_it_has_not_seen() -> None:
    before = Progress.planned({"a": 2})

    after = merge_progress(before, {"b": ModelProgress(failed=1)})

    assert after.by_model["b"].failed == 1
    assert after.failed == 1
    assert after.total == 2


def test_merging_reports_one_at_a_time_equals_counting_everything() -> None:
    done = [(model, kind == "succeeded") for kind in ("succeeded", "failed") for model in "ab"] * 3
    merged = Progress.planned({"a": 6, "b": 6})
    for start in range(0, len(done), 5):
        report: dict[str, ModelProgress] = {}
        for model, succeeded in done[start : start + 5]:
            report.setdefault(model, ModelProgress()).add(
                ModelProgress(completed=succeeded, failed=not succeeded)
            )
        merged = merge_progress(merged, report)

    assert (merged.completed, merged.failed, merged.percent) == (6, 6, 100.0)
    assert merged.by_model["a"] == ModelProgress(total=6, completed=3, failed=3)


# --- final status ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "completed", "failed", "status"),
    [
        (10, 10, 0, RunStatus.COMPLETED),
        (10, 9, 1, RunStatus.COMPLETED),
        (10, 1, 9, RunStatus.COMPLETED),
        (10, 0, 10, RunStatus.FAILED),
        (1, 0, 1, RunStatus.FAILED),
        (0, 0, 0, RunStatus.COMPLETED),
    ],
)
def test_final_status_fails_only_when_every_job_failed(
    total: int, completed: int, failed: int, status: RunStatus
) -> None:
    finished = progress(total, m=ModelProgress(total=total, completed=completed, failed=failed))

    assert final_status(finished) is status


# --- custom status ---------------------------------------------------------------------------


def test_the_custom_status_carries_progress_and_lanes_and_reads_back() -> None:
    live = progress(10, m=ModelProgress(total=10, completed=4, failed=1, cost_usd=0.5))

    written = custom_status(live, ["run:1:mock:0", "run:1:summary:0"])
    read = CustomStatus.read(written)

    assert written["completed"] == 4 and written["byModel"]["m"]["failed"] == 1
    assert read is not None
    assert read.lanes == ["run:1:mock:0", "run:1:summary:0"]
    assert Progress.model_validate(read.model_dump(exclude={"lanes"})) == live


@pytest.mark.parametrize("raw", [None, "text", 3, {"total": "many"}])
def test_a_custom_status_that_is_not_ours_reads_as_none(raw: object) -> None:
    assert CustomStatus.read(raw) is None

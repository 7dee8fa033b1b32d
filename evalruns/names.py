"""Names of the Durable functions, shared by orchestrators, activities and the HTTP layer."""

RUN_ORCHESTRATOR = "run_orchestrator"
LANE_ORCHESTRATOR = "lane_orchestrator"
EXPORT_ORCHESTRATOR = "export_orchestrator"

PLAN_ACTIVITY = "plan_run"
TICK_ACTIVITY = "tick_run"
CLAIM_ACTIVITY = "claim_work"
PROBE_ACTIVITY = "probe_job"
SUMMARISE_ACTIVITY = "summarise_jobs"
EXPORT_ACTIVITY = "export_segment"

# Each pause/resume/cancel is raised as its own event, `control-<n>` for the run's n-th
# command: a name is never reused, so a buffered or replayed event can only answer the wait it
# was meant for (azure-functions-durable-python issue 507 hands a stored event to every later
# wait of the same name).
CONTROL_EVENT_PREFIX = "control-"


def control_event(seq: int) -> str:
    return f"{CONTROL_EVENT_PREFIX}{seq}"

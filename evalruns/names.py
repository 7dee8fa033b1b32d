"""Names of the Durable functions, shared by orchestrators, activities and the HTTP layer."""

RUN_ORCHESTRATOR = "run_orchestrator"
BATCH_ORCHESTRATOR = "batch_orchestrator"

PLAN_ACTIVITY = "plan_run"
LOAD_JOBS_ACTIVITY = "load_jobs"
PROBE_ACTIVITY = "probe_job"
SAVE_RUN_ACTIVITY = "save_run_state"

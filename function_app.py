"""The composition root: the Durable Functions app and its blueprints. Nothing else."""

import azure.durable_functions as df
import azure.functions as func

from activities import exports as export_activities
from activities import runs as run_activities
from http_api import catalog, definitions, exports, health, openapi, run_control, runs, transcripts
from orchestrators import export, lane, run
from timers import sweep

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

for blueprint in (
    catalog.bp,
    definitions.bp,
    runs.bp,
    run_control.bp,
    transcripts.bp,
    exports.bp,
    openapi.bp,
    health.bp,
    run.bp,
    lane.bp,
    run_activities.bp,
    export.bp,
    export_activities.bp,
    sweep.bp,
):
    app.register_functions(blueprint)

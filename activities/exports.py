"""The export activity: one segment of an export written to Blob (see evalruns.exports)."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.lazy import lazy

bp = df.Blueprint()
container = lazy("evalruns.services.container")
jobs = lazy("evalruns.exports.jobs")
segments = lazy("evalruns.exports.segments")


@bp.activity_trigger(input_name="payload", activity=names.EXPORT_ACTIVITY)
def export_segment_activity(payload: dict[str, Any]) -> dict[str, Any]:
    services = container.get_services()
    job = jobs.ExportJob.model_validate(payload)
    done = segments.run_segment(services, job, services.settings.export_segment_seconds)
    return done.to_json_dict()

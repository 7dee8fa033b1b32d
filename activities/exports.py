"""The export activity: one segment of an export written to Blob (see evalruns.exports)."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from evalruns import names
from evalruns.exports.jobs import ExportJob
from evalruns.exports.segments import run_segment
from evalruns.services import get_services

bp = df.Blueprint()


@bp.activity_trigger(input_name="payload", activity=names.EXPORT_ACTIVITY)
def export_segment_activity(payload: dict[str, Any]) -> dict[str, Any]:
    services = get_services()
    job = ExportJob.model_validate(payload)
    return run_segment(services, job, services.settings.export_segment_seconds).to_json_dict()

"""Importing the app loads the function modules and none of the library they call.

The host imports `function_app` before it can index or call anything, so issue 11 bounds that
import at 1.5 times the bare `azure.functions` + `azure.durable_functions` import
(bench/import_bench.py measures it). Timing is no test; what makes the figure is which
modules load, and that is checked here: function modules name the library with
`evalruns.lazy.lazy`, and the library imports its SDKs when first used.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from http_api.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]

# Each costs tens of milliseconds or more on import: pydantic and the models built with it,
# the services and settings, the storage SDKs, HTTP clients and what they bring.
HEAVY = (
    "pydantic",
    "evalruns.settings",
    "evalruns.domain.base",
    "evalruns.domain.definitions",
    "evalruns.domain.orchestration",
    "evalruns.domain.runs",
    "evalruns.domain.transcripts",
    "evalruns.exports.jobs",
    "evalruns.services.container",
    "evalruns.providers.catalog",
    "azure.storage.blob",
    "azure.data.tables",
    "azure.identity",
    "requests",
    "urllib3",
    "httpx",
    "rich",
)
# All of the library that importing the app may load: names, errors, the statuses and page
# limits the query parameters document, and the lazy-module helper.
LIBRARY_AT_IMPORT = {
    "evalruns",
    "evalruns.domain",
    "evalruns.domain.statuses",
    "evalruns.errors",
    "evalruns.lazy",
    "evalruns.names",
    "evalruns.storage",
    "evalruns.storage.paging",
}


def loaded_after(code: str) -> dict[str, list[str]]:
    """What a fresh interpreter has loaded once `code` ran: every module, and the functions
    `code` left in `functions`, if any."""
    script = (
        "import json, sys\n"
        "functions = []\n"
        f"{code}\n"
        "print(json.dumps({'modules': sorted(sys.modules), 'functions': sorted(functions)}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return loaded


def test_importing_and_indexing_the_app_loads_none_of_the_library_it_calls() -> None:
    loaded = loaded_after(
        "import function_app\n"
        "functions = [f.get_function_name() for f in function_app.app.get_functions()]"
    )
    modules = set(loaded["modules"])
    assert {m for m in modules if m == "evalruns" or m.startswith("evalruns.")} == (
        LIBRARY_AT_IMPORT
    )
    assert [m for m in HEAVY if m in modules] == []
    # Every route is still registered (tests/http/test_openapi.py checks the rest).
    assert {route.function for route in ROUTES} <= set(loaded["functions"])


def test_the_library_imports_storage_sdks_and_providers_when_first_used() -> None:
    loaded = loaded_after(
        "import evalruns.services, evalruns.providers.registry, evalruns.services.health"
    )
    sdks = ("azure.storage.blob", "azure.data.tables", "azure.identity", "requests", "httpx")
    assert [m for m in sdks if m in loaded["modules"]] == []

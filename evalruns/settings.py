"""All configuration, read from the environment once (Function App settings, local.settings.json).

Nothing else in the library reads `os.environ`: the settings object is built at the edge and
passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

AZURITE_CONNECTION = "UseDevelopmentStorage=true"
# Azure hands the app a Key Vault reference's own text when the secret cannot be resolved (not
# set yet, no access): that is no key, so the provider stays unconfigured.
UNRESOLVED_KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("


ENV_PREFIX = "EVALRUNS_"
PROVIDER_CAP = re.compile(r"^EVALRUNS_PROVIDER_([A-Z0-9_]+)_MAX_CONCURRENCY$")
MAX_PROVIDER_CAP = 1000


class Settings(BaseModel):
    """Each field `x` is set by the variable `EVALRUNS_X`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    storage_connection: str = Field(
        default="",
        description="Storage connection string; empty means AzureWebJobsStorage.",
    )
    storage_account_name: str = Field(
        default="",
        description="Storage account reached with the managed identity when there is no "
        "connection string (AzureWebJobsStorage__accountName works too).",
    )
    table_prefix: str = Field(default="evalruns", pattern=r"^[A-Za-z][A-Za-z0-9]{0,40}$")
    exports_container: str = Field(default="evalruns-exports")
    spill_container: str = Field(default="evalruns-content")
    sas_expiry_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    export_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="how long an export request writes or waits before it answers 202 and "
        "the export goes on as Durable work",
    )
    export_segment_seconds: float = Field(
        default=20.0, gt=0, le=600, description="how long one export activity writes"
    )
    task_hub: str = "evalruns"
    max_attempts: int = Field(default=4, ge=1, le=20)
    status_cache_seconds: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="how old a run's status may be when a probe checks it (the pause latency)",
    )
    provider_timeout_seconds: float = Field(default=120.0, gt=0)
    sweep_limit: int = Field(
        default=100, ge=1, le=1000, description="live runs the sweeper checks per pass"
    )
    mock_latency_ms: float = Field(default=0.0, ge=0)
    mock_failure_rate: float = Field(default=0.0, ge=0, le=1)
    mock_rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    mock_latency_tail: str = Field(
        default="",
        pattern=r"^$|^(0(\.\d+)?|1(\.0+)?):\d+(\.\d+)?$",
        description="`share:extra_ms`: that share of mock calls takes extra_ms longer",
    )
    mock_rps: float = Field(
        default=0.0, ge=0, description="mock calls per second above which calls get 429"
    )
    mock_seed: int | None = None
    summariser_model: str = Field(
        default="mock-small",
        min_length=1,
        description="Catalog reference of the model that writes decision texts "
        "(`model`, `provider:model`, `model@version` or `provider:model@version`).",
    )
    mock_call_log: str = Field(default="", description="file to append one line per mock call")
    # Provider credentials and endpoints, keyed by the environment variable the catalog names.
    provider_env: dict[str, str] = Field(default_factory=dict)
    provider_caps: dict[str, int] = Field(
        default_factory=dict,
        description="concurrency caps by provider id, from EVALRUNS_PROVIDER_<ID>_MAX_CONCURRENCY",
    )

    def provider_value(self, name: str | None) -> str:
        """A provider key or base URL by its environment variable name ('' when unset)."""
        return self.provider_env.get(name, "") if name else ""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (default: the process environment).

    Provider credentials and endpoints are the variables the model catalog names.
    """
    from evalruns.providers.catalog import load_catalog

    env = os.environ if environ is None else environ
    values: dict[str, object] = {
        key[len(ENV_PREFIX) :].lower(): value
        for key, value in env.items()
        if key.startswith(ENV_PREFIX) and value != "" and not PROVIDER_CAP.match(key)
    }
    values.setdefault("storage_connection", env.get("AzureWebJobsStorage", ""))
    values.setdefault("storage_account_name", env.get("AzureWebJobsStorage__accountName", ""))
    values["provider_caps"] = provider_caps(env)
    values["provider_env"] = {
        name: env[name]
        for name in load_catalog().environment_variables()
        if env.get(name) and not env[name].startswith(UNRESOLVED_KEY_VAULT_REFERENCE)
    }
    return Settings.model_validate(values)


def provider_caps(env: Mapping[str, str]) -> dict[str, int]:
    """`EVALRUNS_PROVIDER_<ID>_MAX_CONCURRENCY` settings by provider id (`AZURE_OPENAI` is
    `azure-openai`); a value that is not a whole number from 1 to 1000 is refused."""
    caps: dict[str, int] = {}
    for key, value in env.items():
        match = PROVIDER_CAP.match(key)
        if match is None or value == "":
            continue
        if not value.strip().isdigit() or not 1 <= int(value) <= MAX_PROVIDER_CAP:
            raise ValueError(f"{key} must be a whole number from 1 to {MAX_PROVIDER_CAP}")
        caps[match.group(1).lower().replace("_", "-")] = int(value)
    return caps

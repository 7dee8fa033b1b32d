"""Configuration as ``func start`` assembles it: local.settings.json, host.json, environment.

* ``local.settings.json`` (Core Tools ``AppSettingsFile``): ``Values`` become process environment
  variables unless the variable is already set to a non-empty value (``StartHostAction.
  UpdateEnvironmentVariables``, which prints a warning then); ``ConnectionStrings`` become
  ``ConnectionStrings:{name}``; ``Host.LocalHttpPort`` is the default port. Core Tools also sets
  ``WEBSITE_HOSTNAME`` (``localhost:{port}``), ``AzureWebJobsScriptRoot`` and forces
  ``AZURE_FUNCTIONS_ENVIRONMENT=Development``.
* ``host.json`` (host ``HostJsonFileConfigurationSource``) is flattened into configuration keys
  under ``AzureFunctionsJobHost``; environment variables named ``AzureFunctionsJobHost__a__b``
  (``__`` is the section separator, keys are case-insensitive) override them.
* The Durable extension reads ``extensions:durableTask`` (hub name with ``%Setting%``
  resolution, concurrency limits with ``10 x processors`` defaults, ``storageProvider``), and
  resolves its storage connection the WebJobs way (``AzureWebJobs{name}`` first).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_SETTINGS_FILE = "local.settings.json"
HOST_JSON_FILE = "host.json"
JOB_HOST_SECTION = "AzureFunctionsJobHost"
DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_HUB_NAME = "TestHubName"
"""``DurableTaskOptions.DefaultHubName`` (used unless ``WEBSITE_SITE_NAME`` is set)."""
DEFAULT_CONNECTION_NAME = "Storage"
"""``ConnectionStringNames.Storage``: resolved as ``AzureWebJobsStorage``."""
DEFAULT_SCRIPT_FILE = "function_app.py"
DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"BlobEndpoint=http://127.0.0.1:10000/{AZURITE_ACCOUNT};"
    f"QueueEndpoint=http://127.0.0.1:10001/{AZURITE_ACCOUNT};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)
"""What the storage SDKs expand ``UseDevelopmentStorage=true`` to (Azurite's default ports)."""
DEFAULT_CONCURRENCY_PER_CPU = 10
"""``AzureStorageDurabilityProviderFactory`` (outside Consumption): ``10 * ProcessorCount``."""
_HUB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,49}$")


class ConfigError(Exception):
    """Configuration the real host or the Durable extension would refuse to start with."""


# -- JSON as Newtonsoft reads it ------------------------------------------------------------


def _strip_comments(text: str) -> str:
    """``JObject.Parse`` accepts ``//`` and ``/* */`` comments; Python's json does not."""
    out: list[str] = []
    i = 0
    in_string = False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def read_json_file(path: Path) -> Any:
    """Parse a JSON file the way Newtonsoft's ``JObject.Parse`` would (comments allowed)."""
    text = path.read_text(encoding="utf-8-sig")
    return json.loads(_strip_comments(text))


def _json_value_text(value: Any) -> str | None:
    """``JValue.ToString(CultureInfo.InvariantCulture)`` / ``ToObject<string>`` of a scalar."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


# -- local.settings.json ----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalSettings:
    """``AppSettingsFile``: what Core Tools reads from local.settings.json."""

    path: Path
    values: dict[str, str | None] = field(default_factory=dict)
    connection_strings: dict[str, str] = field(default_factory=dict)
    local_http_port: int | None = None
    warnings: tuple[str, ...] = ()


def read_local_settings(app_dir: Path) -> LocalSettings:
    """Read local.settings.json; like Core Tools, a missing or malformed file means no settings
    (malformed: with a warning). Encrypted settings are refused: only ``func settings`` on
    Windows can decrypt them."""
    path = app_dir / LOCAL_SETTINGS_FILE
    if not path.is_file():
        return LocalSettings(path)
    try:
        document = read_json_file(path)
        if not isinstance(document, dict):
            raise ValueError("the top-level value is not an object")
        raw_values = document.get("Values") or {}
        if not isinstance(raw_values, dict) or any(
            isinstance(value, dict | list) for value in raw_values.values()
        ):
            raise ValueError("'Values' must map setting names to strings")
        values = {str(key): _json_value_text(value) for key, value in raw_values.items()}
        connection_strings: dict[str, str] = {}
        for name, entry in (document.get("ConnectionStrings") or {}).items():
            text = entry.get("ConnectionString") if isinstance(entry, dict) else entry
            if text is not None:
                connection_strings[str(name)] = str(text)
        host = document.get("Host") or {}
        port = host.get("LocalHttpPort") if isinstance(host, dict) else None
        encrypted = document.get("IsEncrypted", True)
    except (ValueError, AttributeError) as error:
        warning = (
            f"Failed to read app settings file at '{path}'. Ensure it is a valid JSON file. {error}"
        )
        return LocalSettings(path, warnings=(warning,))
    if encrypted is not False and any(values.values()):
        raise ConfigError(
            f"{path}: settings are encrypted ('IsEncrypted' is true or missing) and devhost "
            'cannot decrypt them. Set "IsEncrypted": false and store the values in plain text.'
        )
    return LocalSettings(
        path,
        values=values,
        connection_strings=connection_strings,
        local_http_port=int(port) if isinstance(port, int) and port > 0 else None,
    )


def apply_local_settings(settings: LocalSettings, environ: MutableMapping[str, str]) -> list[str]:
    """``StartHostAction.UpdateEnvironmentVariables``: returns the warnings Core Tools prints."""
    messages = list(settings.warnings)
    entries: dict[str, str | None] = dict(settings.values)
    entries.update(
        {f"ConnectionStrings:{name}": value for name, value in settings.connection_strings.items()}
    )
    for key, value in entries.items():
        if not key:
            messages.append("Skipping local setting with empty key.")
        elif environ.get(key):
            messages.append(
                f"Skipping '{key}' from local settings as it's already defined in current "
                "environment variables."
            )
        elif value is None:
            messages.append(f"Skipping '{key}' because value is null")
        else:
            environ[key] = value
    return messages


def apply_host_environment(
    environ: MutableMapping[str, str], *, app_dir: Path, public_authority: str
) -> None:
    """What Core Tools adds to the environment before starting the host."""
    environ["WEBSITE_HOSTNAME"] = public_authority
    environ["AzureWebJobsScriptRoot"] = str(app_dir)
    environ["AZURE_FUNCTIONS_ENVIRONMENT"] = "Development"


# -- host.json + AzureFunctionsJobHost__ overrides ----------------------------------------------


def _lookup(environ: Mapping[str, str], key: str) -> str | None:
    """.NET configuration keys are case-insensitive (an exact match wins)."""
    if key in environ:
        return environ[key]
    folded = key.casefold()
    for name, value in environ.items():
        if name.casefold() == folded:
            return value
    return None


class HostConfiguration:
    """The ``AzureFunctionsJobHost`` configuration section: host.json plus overrides."""

    def __init__(self, values: Mapping[str, str | None]) -> None:
        """``values`` in order of precedence: a later key differing only in case from an
        earlier one overrides it (an ``AzureFunctionsJobHost__`` override of host.json)."""
        self._values = {key.casefold(): (key, value) for key, value in values.items()}

    def get(self, path: str) -> str | None:
        """A value by ``a:b:c`` path (case-insensitive), ``None`` when absent."""
        found = self._values.get(path.casefold())
        return None if found is None else found[1]

    def children(self, path: str) -> dict[str, str | None]:
        """The keys directly or indirectly under ``path`` (relative, original case)."""
        prefix = path.casefold() + ":"
        return {
            key[len(prefix) :]: value
            for folded, (key, value) in self._values.items()
            if folded.startswith(prefix)
        }

    def list(self, path: str) -> list[str] | None:
        """An array section (``path:0``, ``path:1``...)."""
        items = {key: value for key, value in self.children(path).items() if key.isdigit()}
        if not items:
            return None
        return [value or "" for _, value in sorted(items.items(), key=lambda kv: int(kv[0]))]


def _flatten(value: Any, path: list[str], out: dict[str, str | None]) -> None:
    """``HostJsonFileConfigurationProvider.ProcessToken``."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, [*path, str(key)], out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _flatten(item, [*path, str(index)], out)
    else:
        out[":".join(path)] = _json_value_text(value)


def load_host_configuration(app_dir: Path, environ: Mapping[str, str]) -> HostConfiguration:
    """host.json (validated like the host does) with ``AzureFunctionsJobHost__`` overrides."""
    path = app_dir / HOST_JSON_FILE
    document: Any = {"version": "2.0"}
    if path.is_file():
        try:
            document = read_json_file(path)
        except ValueError as error:
            raise ConfigError(
                f"Unable to parse host configuration file '{path}'. {error}"
            ) from None
        if not isinstance(document, dict):
            raise ConfigError(f"Unable to parse host configuration file '{path}'.")
        if not document:
            document = {"version": "2.0"}
    version = document.get("version")
    if not version:
        raise ConfigError(
            "The host.json file is missing the required 'version' property. See "
            "https://aka.ms/functions-hostjson for steps to migrate the configuration file."
        )
    if str(version) != "2.0":
        raise ConfigError(
            f"'{version}' is an invalid value for host.json 'version' property. We recommend "
            "you set the 'version' property to '2.0'. See https://aka.ms/functions-hostjson for "
            "more information on this configuration file."
        )
    flat: dict[str, str | None] = {}
    _flatten(document, [], flat)
    prefix = (JOB_HOST_SECTION + "__").casefold()
    for name, value in environ.items():
        if name.casefold().startswith(prefix) and len(name) > len(prefix):
            flat[name[len(prefix) :].replace("__", ":")] = value
    return HostConfiguration(flat)


# -- the typed view ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevhostConfig:
    app_dir: Path
    script_file: str
    route_prefix: str
    hub_name: str
    max_concurrent_activities: int
    max_concurrent_orchestrators: int
    storage_connection_name: str
    """Resolve with :func:`resolve_connection_string` when the app uses Durable Functions."""
    functions_allow_list: tuple[str, ...] | None
    function_key: str | None
    master_key: str | None
    system_key: str | None
    log_level: int = logging.INFO
    """host.json ``logging.logLevel.default`` (``Information`` unless set)."""

    @property
    def auth_enabled(self) -> bool:
        return self.function_key is not None or self.master_key is not None


def resolve_whole_setting(text: str, environ: Mapping[str, str]) -> str:
    """``INameResolver.TryResolveWholeString``: ``%Name%`` is the value of app setting Name."""
    match = re.fullmatch(r"%([^%]+)%", text)
    if match is None:
        return text
    value = _lookup(environ, match.group(1))
    return value if value else text


def _positive_int(config: HostConfiguration, path: str, default: int) -> int:
    text = config.get(path)
    if text is None or text == "":
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(
            f"Failed to convert configuration value at '{JOB_HOST_SECTION}:{path}' ({text!r}) to "
            "type 'System.Nullable`1[System.Int32]'."
        ) from None
    if value <= 0:
        name = path.rsplit(":", 1)[-1]
        raise ConfigError(f"{name} must be a positive integer value (got {value}).")
    return value


def validate_hub_name(name: str) -> None:
    """``AzureStorageOptions.ValidateHubName`` (table, queue and container name rules)."""
    if not _HUB_NAME.match(name):
        raise ConfigError(
            f"Task hub name '{name}' should contain only alphanumeric characters, start with a "
            "letter, and have length between 3 and 45."
        )


def hub_name(config: HostConfiguration, environ: Mapping[str, str]) -> str:
    configured = config.get("extensions:durableTask:hubName")
    if configured:
        resolved = resolve_whole_setting(configured, environ)
        validate_hub_name(resolved)
        return resolved
    default = environ.get("WEBSITE_SITE_NAME") or DEFAULT_HUB_NAME
    # ``IsSanitizedHubName``: a default name keeps only its letters and digits.
    sanitized = "".join(c for c in default if c.isalnum()) or "DefaultTaskHub"
    if sanitized[0].isdigit():
        sanitized = "t" + sanitized
    return sanitized[:45]


def resolve_connection_string(name: str, environ: Mapping[str, str]) -> str:
    """``GetWebJobsConnectionString``: ``AzureWebJobs{name}`` first, then ``{name}``, each as
    ``ConnectionStrings:{key}`` or a plain setting. ``UseDevelopmentStorage=true`` becomes
    Azurite's default endpoints."""
    for key in (f"AzureWebJobs{name}", name):
        for candidate in (f"ConnectionStrings:{key}", key):
            value = _lookup(environ, candidate)
            if value:
                return expand_development_storage(value)
    identity = [
        key
        for key in environ
        if key.casefold().startswith(f"azurewebjobs{name}__".casefold())
        or key.casefold().startswith(f"{name}__".casefold())
    ]
    if identity:
        raise ConfigError(
            f"The storage connection '{name}' is configured as an identity-based connection "
            f"({', '.join(sorted(identity))}); devhost needs a connection string."
        )
    raise ConfigError(
        f"Storage connection '{name}' is not set: set AzureWebJobs{name} (in local.settings.json "
        "Values or the environment) to a connection string, e.g. UseDevelopmentStorage=true."
    )


def expand_development_storage(connection_string: str) -> str:
    parts = [part.strip() for part in connection_string.split(";") if part.strip()]
    settings = {}
    for part in parts:
        key, _, value = part.partition("=")
        settings[key.strip().casefold()] = value.strip()
    if settings.get("usedevelopmentstorage", "").casefold() != "true":
        return connection_string
    proxy = settings.get("developmentstorageproxyuri")
    if not proxy:
        return AZURITE_CONNECTION
    base = proxy.rstrip("/")
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={base}:10000/{AZURITE_ACCOUNT};QueueEndpoint={base}:10001/"
        f"{AZURITE_ACCOUNT};TableEndpoint={base}:10002/{AZURITE_ACCOUNT};"
    )


def build_config(
    app_dir: Path,
    environ: Mapping[str, str],
    *,
    cpu_count: int | None = None,
) -> DevhostConfig:
    """The typed configuration, from an environment that already holds the local settings."""
    host = load_host_configuration(app_dir, environ)
    route_prefix = host.get("extensions:http:routePrefix")
    route_prefix = DEFAULT_ROUTE_PREFIX if route_prefix is None else route_prefix.strip("/")
    provider = host.get("extensions:durableTask:storageProvider:type")
    if provider and provider.casefold() != "azurestorage":
        raise ConfigError(
            f"Durable storage provider '{provider}' is not supported by devhost (only the "
            "default Azure Storage provider is)."
        )
    connection_name = (
        host.get("extensions:durableTask:storageProvider:connectionName")
        or host.get("extensions:durableTask:storageProvider:connectionStringName")
        or DEFAULT_CONNECTION_NAME
    )
    default_concurrency = DEFAULT_CONCURRENCY_PER_CPU * (cpu_count or os.cpu_count() or 1)
    allow_list = host.list("functions")
    return DevhostConfig(
        app_dir=app_dir,
        script_file=environ.get("PYTHON_SCRIPT_FILE_NAME") or DEFAULT_SCRIPT_FILE,
        route_prefix=route_prefix,
        hub_name=hub_name(host, environ),
        max_concurrent_activities=_positive_int(
            host, "extensions:durableTask:maxConcurrentActivityFunctions", default_concurrency
        ),
        max_concurrent_orchestrators=_positive_int(
            host, "extensions:durableTask:maxConcurrentOrchestratorFunctions", default_concurrency
        ),
        storage_connection_name=connection_name,
        functions_allow_list=tuple(allow_list) if allow_list is not None else None,
        function_key=environ.get("DEVHOST_FUNCTION_KEY") or None,
        master_key=environ.get("DEVHOST_MASTER_KEY") or environ.get("DEVHOST_FUNCTION_KEY") or None,
        system_key=environ.get("DEVHOST_SYSTEM_KEY") or None,
        log_level=log_level(host.get("logging:logLevel:default")),
    )


_LOG_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}


def log_level(text: str | None) -> int:
    """A .NET ``LogLevel`` name as a ``logging`` level."""
    if not text:
        return logging.INFO
    try:
        return _LOG_LEVELS[text.strip().casefold()]
    except KeyError:
        raise ConfigError(
            f"'{text}' is not a valid log level for logging.logLevel.default."
        ) from None

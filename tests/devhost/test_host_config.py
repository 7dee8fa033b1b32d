"""local.settings.json, host.json and the environment, read the way ``func start`` reads them."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from devhost.config import (
    AZURITE_CONNECTION,
    ConfigError,
    apply_local_settings,
    build_config,
    expand_development_storage,
    load_host_configuration,
    read_local_settings,
    resolve_connection_string,
    resolve_whole_setting,
)


def write(directory: Path, name: str, content: Any) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    (directory / name).write_text(text)


def test_local_settings_values_become_environment_variables_unless_already_set(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "local.settings.json",
        {
            "IsEncrypted": False,
            "Values": {"A": "from file", "B": "from file", "EMPTY_ENV": "x", "NUM": 5},
            "ConnectionStrings": {
                "Plain": "Server=a",
                "Typed": {"ConnectionString": "Server=b", "ProviderName": "System.Data"},
            },
            "Host": {"LocalHttpPort": 7123},
        },
    )
    environ = {"B": "from env", "EMPTY_ENV": ""}

    settings = read_local_settings(tmp_path)
    messages = apply_local_settings(settings, environ)

    assert environ == {
        "A": "from file",
        "B": "from env",
        "EMPTY_ENV": "x",  # an empty variable does not count as defined
        "NUM": "5",
        "ConnectionStrings:Plain": "Server=a",
        "ConnectionStrings:Typed": "Server=b",
    }
    assert settings.local_http_port == 7123
    assert messages == [
        "Skipping 'B' from local settings as it's already defined in current environment variables."
    ]


def test_local_settings_scalars_are_converted_like_newtonsoft(tmp_path: Path) -> None:
    write(
        tmp_path,
        "local.settings.json",
        {"IsEncrypted": False, "Values": {"T": True, "F": False, "N": None, "X": 1.5}},
    )
    environ: dict[str, str] = {}

    messages = apply_local_settings(read_local_settings(tmp_path), environ)

    assert environ == {"T": "True", "F": "False", "X": "1.5"}
    assert messages == ["Skipping 'N' because value is null"]


def test_missing_local_settings_means_no_settings(tmp_path: Path) -> None:
    settings = read_local_settings(tmp_path)

    assert settings.values == {} and settings.local_http_port is None


def test_malformed_local_settings_are_ignored_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "local.settings.json", '{"Values": {"A": {"nested": 1}}}')
    environ: dict[str, str] = {}

    messages = apply_local_settings(read_local_settings(tmp_path), environ)

    assert environ == {}
    assert len(messages) == 1 and messages[0].startswith("Failed to read app settings file")


def test_encrypted_local_settings_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "local.settings.json", {"Values": {"A": "AQAAANCMnd8BFdERjHoAwE"}})

    with pytest.raises(ConfigError, match="IsEncrypted"):
        read_local_settings(tmp_path)


def test_host_json_accepts_comments_and_environment_overrides_win(tmp_path: Path) -> None:
    write(
        tmp_path,
        "host.json",
        """{
          // the route prefix
          "version": "2.0",
          "extensions": {
            "http": { "routePrefix": "api" },
            /* concurrency */
            "durableTask": { "maxConcurrentActivityFunctions": 32, "hubName": "Hub1" }
          },
          "functions": ["a", "b"]
        }""",
    )
    environ = {
        "AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions": "7",
        "azurefunctionsjobhost__EXTENSIONS__http__ROUTEPREFIX": "v2",
    }

    config = load_host_configuration(tmp_path, environ)

    assert config.get("extensions:durableTask:maxConcurrentActivityFunctions") == "7"
    assert config.get("Extensions:Http:RoutePrefix") == "v2"
    assert config.get("extensions:durableTask:hubName") == "Hub1"
    assert config.list("functions") == ["a", "b"]


@pytest.mark.parametrize(
    ("host_json", "message"),
    [
        ({"extensions": {}}, "missing the required 'version' property"),
        ({"version": "3.0"}, "'3.0' is an invalid value for host.json 'version' property"),
        ("{ not json", "Unable to parse host configuration file"),
    ],
)
def test_host_json_the_host_refuses(tmp_path: Path, host_json: Any, message: str) -> None:
    write(tmp_path, "host.json", host_json)

    with pytest.raises(ConfigError, match=message):
        load_host_configuration(tmp_path, {})


def test_missing_or_empty_host_json_is_the_default_configuration(tmp_path: Path) -> None:
    assert load_host_configuration(tmp_path, {}).get("version") == "2.0"
    write(tmp_path, "host.json", {})
    assert load_host_configuration(tmp_path, {}).get("version") == "2.0"


def test_typed_configuration_defaults(tmp_path: Path) -> None:
    config = build_config(tmp_path, {}, cpu_count=4)

    assert config.route_prefix == "api"
    assert config.hub_name == "TestHubName"
    assert config.max_concurrent_activities == 40
    assert config.max_concurrent_orchestrators == 40
    assert config.storage_connection_name == "Storage"
    assert config.functions_allow_list is None
    assert config.script_file == "function_app.py"
    assert config.log_level == logging.INFO
    assert not config.auth_enabled


def test_typed_configuration_from_host_json_settings_and_overrides(tmp_path: Path) -> None:
    write(
        tmp_path,
        "host.json",
        {
            "version": "2.0",
            "logging": {"logLevel": {"default": "Warning"}},
            "extensions": {
                "http": {"routePrefix": "/v1/"},
                "durableTask": {
                    "hubName": "%MY_HUB%",
                    "maxConcurrentActivityFunctions": 32,
                    "maxConcurrentOrchestratorFunctions": 8,
                    "storageProvider": {"connectionName": "DurableStorage"},
                },
            },
        },
    )
    environ = {
        "MY_HUB": "evalruns",
        "AzureFunctionsJobHost__extensions__durableTask__maxConcurrentActivityFunctions": "3",
        "DEVHOST_FUNCTION_KEY": "fkey",
    }

    config = build_config(tmp_path, environ)

    assert config.route_prefix == "v1"
    assert config.hub_name == "evalruns"
    assert config.max_concurrent_activities == 3
    assert config.max_concurrent_orchestrators == 8
    assert config.storage_connection_name == "DurableStorage"
    assert config.log_level == logging.WARNING
    assert (config.function_key, config.master_key) == ("fkey", "fkey")
    assert config.auth_enabled


def test_an_empty_route_prefix_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "host.json", {"version": "2.0", "extensions": {"http": {"routePrefix": ""}}})

    assert build_config(tmp_path, {}).route_prefix == ""


@pytest.mark.parametrize(
    ("hub", "environ", "message"),
    [
        ("%UNSET_HUB%", {}, "Task hub name '%UNSET_HUB%' should contain only alphanumeric"),
        ("my-hub", {}, "Task hub name 'my-hub'"),
        ("1hub", {}, "Task hub name '1hub'"),
        ("ab", {}, "Task hub name 'ab'"),
    ],
)
def test_invalid_hub_names_are_refused(
    tmp_path: Path, hub: str, environ: dict[str, str], message: str
) -> None:
    write(
        tmp_path, "host.json", {"version": "2.0", "extensions": {"durableTask": {"hubName": hub}}}
    )

    with pytest.raises(ConfigError, match=message):
        build_config(tmp_path, environ)


def test_the_default_hub_name_comes_from_the_site_name_sanitized(tmp_path: Path) -> None:
    assert build_config(tmp_path, {"WEBSITE_SITE_NAME": "my-app-01"}).hub_name == "myapp01"
    assert build_config(tmp_path, {"WEBSITE_SITE_NAME": "9lives"}).hub_name == "t9lives"


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_invalid_concurrency_limits_are_refused(tmp_path: Path, value: str) -> None:
    key = "AzureFunctionsJobHost__extensions__durableTask__maxConcurrentOrchestratorFunctions"

    with pytest.raises(ConfigError, match="maxConcurrentOrchestratorFunctions"):
        build_config(tmp_path, {key: value})


def test_other_storage_providers_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        "host.json",
        {"version": "2.0", "extensions": {"durableTask": {"storageProvider": {"type": "mssql"}}}},
    )

    with pytest.raises(ConfigError, match="'mssql' is not supported"):
        build_config(tmp_path, {})


def test_whole_string_setting_references() -> None:
    environ = {"HUB": "alpha"}

    assert resolve_whole_setting("%HUB%", environ) == "alpha"
    assert resolve_whole_setting("%hub%", environ) == "alpha"  # configuration is case-insensitive
    assert resolve_whole_setting("x%HUB%", environ) == "x%HUB%"
    assert resolve_whole_setting("%MISSING%", environ) == "%MISSING%"


def test_storage_connections_resolve_the_webjobs_way() -> None:
    assert resolve_connection_string("Storage", {"AzureWebJobsStorage": "A=1"}) == "A=1"
    assert (
        resolve_connection_string("Storage", {"ConnectionStrings:AzureWebJobsStorage": "B=2"})
        == "B=2"
    )
    assert resolve_connection_string("Mine", {"Mine": "C=3"}) == "C=3"
    assert resolve_connection_string("Mine", {"AzureWebJobsMine": "D=4", "Mine": "C=3"}) == "D=4"
    assert (
        resolve_connection_string("Storage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
        == AZURITE_CONNECTION
    )


def test_missing_and_identity_based_storage_connections_are_refused() -> None:
    with pytest.raises(ConfigError, match="AzureWebJobsStorage"):
        resolve_connection_string("Storage", {})
    with pytest.raises(ConfigError, match="identity-based"):
        resolve_connection_string("Storage", {"AzureWebJobsStorage__accountName": "acct"})


def test_development_storage_expands_to_azurite_endpoints() -> None:
    expanded = expand_development_storage("UseDevelopmentStorage=true")

    assert "AccountName=devstoreaccount1" in expanded
    assert "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1" in expanded
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in expanded
    assert "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1" in expanded
    proxied = expand_development_storage(
        "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://azurite"
    )
    assert "TableEndpoint=http://azurite:10002/devstoreaccount1" in proxied
    assert expand_development_storage("AccountName=x;AccountKey=y") == "AccountName=x;AccountKey=y"

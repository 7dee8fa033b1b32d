"""The template declares what evalruns needs: resources, app settings, role assignments,
outputs; and it stays within the Bicep that offline tools can check.

Reads the templates as pycep (checkov's parser) parsed them, plus the raw text where that is
clearer. There is no Bicep compiler here, so the cross-file checks a compiler would do (module
parameters and outputs) are done here too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from evalruns.settings import Settings
from evalruns.storage.clients import TABLES
from tests.infra import scan

Templates = dict[str, dict[str, Any]]

MODULES = {
    "app/identity.bicep",
    "app/storage.bicep",
    "app/monitoring.bicep",
    "app/keyvault.bicep",
    "app/rbac.bicep",
    "app/durable-task-scheduler.bicep",
    "app/function-app.bicep",
}

# Built-in role definition ids.
BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
DURABLE_TASK_DATA_CONTRIBUTOR = "0ad04412-c4d5-4796-b79c-f76d14c8d402"

CATALOG = json.loads((scan.ROOT / "evalruns/providers/catalog.json").read_text())
PROVIDER_KEY_VARIABLES = [p["keyEnv"] for p in CATALOG["providers"] if p.get("keyEnv")]
ENDPOINT_VARIABLES = [
    p[field]
    for p in CATALOG["providers"]
    for field in ("baseUrlEnv", "apiVersionEnv")
    if p.get(field)
]


# ---- helpers over pycep's structure ----


def unwrap(config: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(the body of a resource/module, its `if` condition) through conditions and loops."""
    condition = None
    while "config" in config and ("condition" in config or "loop_type" in config):
        condition = config.get("condition") or condition
        config = config["config"]
    return config, condition


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {
        name: unwrap(resource["config"])[0]
        for name, resource in template.get("resources", {}).items()
        if resource["type"] == type_ and not resource["existing"]
    }


def one(template: dict[str, Any], type_: str) -> dict[str, Any]:
    found = resources(template, type_)
    assert len(found) == 1, f"expected one {type_}, found {list(found)}"
    return next(iter(found.values()))


def variable(template: dict[str, Any], name: str) -> Any:
    return template["variables"][name]["value"]


def settings_in(value: Any) -> dict[str, Any]:
    """Every { name, value } object in a variable (list, loop or single object)."""
    found: dict[str, Any] = {}
    if isinstance(value, dict) and "loop_type" in value:
        value = [value["config"]]
    for item in value if isinstance(value, list) else [value]:
        # (a loop over items() has computed names: not a setting known by name)
        if (
            isinstance(item, dict)
            and set(item) == {"name", "value"}
            and isinstance(item["name"], str)
        ):
            found[item["name"]] = item["value"]
    return found


def concat_of(value: Any) -> list[Any]:
    """The arguments of a concat(...) call, in order."""
    assert isinstance(value, dict) and value.get("function", {}).get("type") == "concat", value
    parameters = value["function"]["parameters"]
    return [parameters[f"arg_{n}"] for n in range(1, len(parameters) + 1)]


# What main.bicep passes to the function-app module as appSettings, in this order.
MODULE_APP_SETTINGS = [
    "evalrunsSettings",
    "providerEndpointSettings",
    "providerKeySettings",
    "durableTaskSchedulerSettings",
]


def site_setting_variables(templates: Templates) -> list[tuple[str, str]]:
    """(file, variable) of each variable siteConfig.appSettings is made of, checking the wiring:
    the site gets concat(hostSettings, appSettings), and the functionApp module's appSettings
    is the concat of MODULE_APP_SETTINGS."""
    app, main = templates["app/function-app.bicep"], templates["main.bicep"]
    site = one(app, "Microsoft.Web/sites")
    assert concat_of(site["properties"]["siteConfig"]["appSettings"]) == [
        "hostSettings",
        "appSettings",
    ]
    assert app["parameters"]["appSettings"]["type"] == "array"
    passed = unwrap(main["modules"]["functionApp"]["config"])[0]["params"]["appSettings"]
    assert concat_of(passed) == MODULE_APP_SETTINGS
    return [("app/function-app.bicep", "hostSettings")] + [
        ("main.bicep", name) for name in MODULE_APP_SETTINGS
    ]


def settings_of(template: dict[str, Any], value: Any) -> dict[str, Any]:
    """The { name, value } objects a settings expression yields, through variable names, both
    branches of a conditional and filter()."""
    if isinstance(value, str) and value in template.get("variables", {}):
        return settings_of(template, variable(template, value))
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "conditional":
        operands = value["operator"]["operands"]
        return {
            **settings_of(template, operands["true_value"]),
            **settings_of(template, operands["false_value"]),
        }
    if isinstance(value, dict) and value.get("function", {}).get("type") == "filter":
        return settings_of(template, value["function"]["parameters"]["input_array"])
    return settings_in(value)


@pytest.fixture(scope="module")
def app_settings(templates: Templates) -> dict[str, Any]:
    """Every app setting the site can get, by name (values as pycep has them): only from the
    variables that reach siteConfig.appSettings."""
    found: dict[str, Any] = {}
    for key, name in site_setting_variables(templates):
        found.update(settings_of(templates[key], name))
    return found


def role_assignments(templates: Templates) -> list[dict[str, Any]]:
    """(role id, scope resource type, principal parameter, principal type, conditional)."""
    found = []
    for key, template in templates.items():
        symbols = {name: r["type"] for name, r in template.get("resources", {}).items()}
        for name, config in resources(template, "Microsoft.Authorization/roleAssignments").items():
            _, condition = unwrap(template["resources"][name]["config"])
            properties = config["properties"]
            function = properties["roleDefinitionId"]["function"]
            assert function["type"] == "subscription_resource_id", (key, name)
            assert (
                function["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
            )
            role = function["parameters"]["resource_name_1"]
            if isinstance(role, dict):  # roles.<name>
                operands = role["operator"]["operands"]
                role = variable(template, operands["operand_1"])[operands["operand_2"]]
            else:  # a variable holding the id
                role = variable(template, role)
            assert config["name"]["function"]["type"] == "guid", (key, name)
            found.append(
                {
                    "file": key,
                    "role": role,
                    "scope": symbols[config["scope"]],
                    "principal": properties["principalId"],
                    "principalType": properties["principalType"],
                    "conditional": condition is not None,
                }
            )
    return found


def text(path: str) -> str:
    return (scan.INFRA / path).read_text(encoding="utf-8")


# ---- the shape of the template ----


def test_subscription_scope_resource_group_and_local_modules(templates: Templates) -> None:
    main = templates["main.bicep"]
    assert main["globals"]["scope"]["value"] == "subscription"
    assert one(main, "Microsoft.Resources/resourceGroups")["location"] == "location"
    modules = main["modules"]
    assert {m["detail"]["path"] for m in modules.values()} == MODULES
    for name, module in modules.items():
        assert module["type"] == "local", f"{name}: registry modules are not allowed"
        body, condition = unwrap(module["config"])
        assert body["scope"] == "rg", name
        expected = "useDurableTaskScheduler" if "durable" in module["detail"]["path"] else None
        assert condition == expected, name
    assert set(templates) == {"main.bicep", *MODULES}


def test_module_parameters_and_outputs_exist(templates: Templates) -> None:
    """What `bicep build` would catch: unknown or missing module parameters and outputs."""
    main = templates["main.bicep"]
    symbol_to_file = {}
    for symbol, module in main["modules"].items():
        path = module["detail"]["path"]
        symbol_to_file[symbol] = path
        declared = templates[path].get("parameters", {})
        passed = set(unwrap(module["config"])[0]["params"])
        assert passed <= set(declared), f"{path}: unknown parameters {passed - set(declared)}"
        required = {p for p, spec in declared.items() if spec.get("default") is None}
        assert required <= passed, f"{path}: missing parameters {required - passed}"
    for symbol, output in re.findall(r"\b(\w+)\.outputs\.(\w+)", text("main.bicep")):
        outputs = templates[symbol_to_file[symbol]].get("outputs", {})
        assert output in outputs, f"{symbol_to_file[symbol]} has no output {output}"


def test_parameters(templates: Templates) -> None:
    params = templates["main.bicep"]["parameters"]
    for name in (
        "environmentName",
        "location",
        "principalId",
        "resourceGroupName",
        "functionAppName",
        "storageAccountName",
        "keyVaultName",
        "maximumInstanceCount",
        "instanceMemoryMB",
        "useDurableTaskScheduler",
        "taskHubName",
        "tablePrefix",
        "sasExpiryMinutes",
        "providerKeys",
    ):
        assert name in params, name
    assert params["useDurableTaskScheduler"]["type"] == "bool"
    assert params["useDurableTaskScheduler"]["default"] is False

    def decorator(name: str, kind: str) -> Any:
        return next(d["argument"] for d in params[name]["decorators"] if d["type"] == kind)

    assert decorator("maximumInstanceCount", "max_value") == 1000
    assert decorator("instanceMemoryMB", "allowed") == [512, 2048, 4096]
    # The defaults are evalruns' own defaults, so Azure behaves like local runs.
    defaults = Settings()
    assert params["taskHubName"]["default"] == defaults.task_hub
    assert params["tablePrefix"]["default"] == defaults.table_prefix
    assert params["exportsContainerName"]["default"] == defaults.exports_container
    assert params["spillContainerName"]["default"] == defaults.spill_container
    assert params["sasExpiryMinutes"]["default"] == defaults.sas_expiry_minutes
    assert decorator("sasExpiryMinutes", "max_value") <= 7 * 24 * 60  # user delegation key
    assert params["summariserModel"]["default"] == defaults.summariser_model


def test_parameters_files_feed_main(templates: Templates) -> None:
    params = templates["main.bicep"]["parameters"]
    values = json.loads(text("main.parameters.json"))["parameters"]
    assert set(values) <= set(params), set(values) - set(params)
    required = {name for name, spec in params.items() if spec.get("default") is None}
    assert required <= set(values)
    assert values["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert values["location"]["value"] == "${AZURE_LOCATION}"
    assert values["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"


def test_parameter_defaults_agree_across_files(templates: Templates) -> None:
    # checkov resolves parameters by name across files: two parameters of one name with
    # different defaults made its results depend on the hash seed (CKV_AZURE_206 flapped).
    defaults: dict[str, dict[str, Any]] = {}
    for path, template in templates.items():
        for name, spec in template.get("parameters", {}).items():
            if spec.get("default") is not None:
                defaults.setdefault(name, {})[path] = json.dumps(spec["default"], sort_keys=True)
    clashes = {
        name: by_file for name, by_file in defaults.items() if len(set(by_file.values())) > 1
    }
    assert clashes == {}


# ---- compute, storage, monitoring, Key Vault ----


def test_flex_consumption_function_app(templates: Templates) -> None:
    app = templates["app/function-app.bicep"]
    plan = one(app, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True
    site = one(app, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert list(site["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["scmMinTlsVersion"] == "1.2"  # the Kudu/deployment endpoint
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    scale = config["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert variable(app, "durableAlwaysReady") == [
        {"name": "durable", "instanceCount": "durableAlwaysReadyInstances"}
    ]
    main_params = unwrap(templates["main.bicep"]["modules"]["functionApp"]["config"])[0]["params"]
    assert main_params["pythonVersion"] == "3.12"
    assert main_params["maximumInstanceCount"] == "maximumInstanceCount"
    assert main_params["instanceMemoryMB"] == "instanceMemoryMB"
    policies = resources(app, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert sorted(p["name"] for p in policies.values()) == ["ftp", "scm"]
    assert all(p["properties"]["allow"] is False for p in policies.values())


def test_storage_account_tables_and_containers(templates: Templates) -> None:
    storage = templates["app/storage.bicep"]
    account = one(storage, "Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True
    blob_service = one(storage, "Microsoft.Storage/storageAccounts/blobServices")["properties"]
    for policy in ("deleteRetentionPolicy", "containerDeleteRetentionPolicy"):  # soft delete
        assert blob_service[policy] == {"enabled": True, "days": 7}, policy
    containers = resources(storage, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert {c["name"] for c in containers.values()} == {"deploymentContainerName", "containerName"}
    assert all(c["properties"]["publicAccess"] == "None" for c in containers.values())
    assert storage["resources"]["containers"]["config"]["loop_type"]["detail"]["array_name"] == (
        "containerNames"
    )
    tables = resources(storage, "Microsoft.Storage/storageAccounts/tableServices/tables")
    assert [t["name"] for t in tables.values()] == ["tableName"]

    main = templates["main.bicep"]
    passed = unwrap(main["modules"]["storage"]["config"])[0]["params"]
    assert passed["containerNames"] == ["exportsContainerName", "spillContainerName"]
    assert passed["tableNames"] == "tableNames"
    assert variable(main, "tableNames") == [f"${{tablePrefix}}{t}" for t in TABLES]


def test_monitoring_without_local_auth(templates: Templates) -> None:
    monitoring = templates["app/monitoring.bicep"]
    workspace = one(monitoring, "Microsoft.OperationalInsights/workspaces")
    assert workspace["properties"]["features"]["disableLocalAuth"] is True
    component = one(monitoring, "Microsoft.Insights/components")
    assert component["properties"]["DisableLocalAuth"] is True
    assert component["properties"]["WorkspaceResourceId"]


def test_key_vault_is_rbac_only_and_holds_no_secret_values(templates: Templates) -> None:
    vault = one(templates["app/keyvault.bicep"], "Microsoft.KeyVault/vaults")["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert "accessPolicies" not in vault
    assert vault["enablePurgeProtection"] is True
    for template in templates.values():
        # The template never writes a secret: keys are set after deployment and survive
        # re-provisioning.
        assert not resources(template, "Microsoft.KeyVault/vaults/secrets")


# ---- app settings ----


def test_app_settings_reach_the_site(templates: Templates) -> None:
    """The app_settings fixture (read by the tests below) holds what reaches the site."""
    sources = site_setting_variables(templates)
    assert sources == [
        ("app/function-app.bicep", "hostSettings"),
        ("main.bicep", "evalrunsSettings"),
        ("main.bicep", "providerEndpointSettings"),
        ("main.bicep", "providerKeySettings"),
        ("main.bicep", "durableTaskSchedulerSettings"),
    ]
    by_source = {name: settings_of(templates[key], name) for key, name in sources}
    assert "AzureWebJobsStorage__credential" in by_source["hostSettings"]
    assert "EVALRUNS_TABLE_PREFIX" in by_source["evalrunsSettings"]
    assert "DURABLE_TASK_SCHEDULER_CONNECTION_STRING" in by_source["durableTaskSchedulerSettings"]


def test_identity_based_host_storage_and_telemetry(app_settings: dict[str, Any]) -> None:
    for service in ("blob", "queue", "table"):
        assert app_settings[f"AzureWebJobsStorage__{service}ServiceUri"] == f"{service}Endpoint"
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert app_settings["AzureWebJobsStorage__clientId"] == "identityClientId"
    assert "AzureWebJobsStorage" not in app_settings  # no connection string
    assert app_settings["AZURE_CLIENT_ID"] == "identityClientId"  # DefaultAzureCredential
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in app_settings
    # Flex Consumption rejects these (the runtime is in functionAppConfig).
    for forbidden in ("FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"):
        assert forbidden not in app_settings
    assert "WEBSITE_RUN_FROM_PACKAGE" not in app_settings


def test_evalruns_settings_are_wired_from_parameters(app_settings: dict[str, Any]) -> None:
    expected = {
        "EVALRUNS_STORAGE_ACCOUNT_NAME": {
            "operator": {
                "type": "property_accessor",
                "operands": {"operand_1": "names", "operand_2": "storage"},
            }
        },
        "EVALRUNS_TABLE_PREFIX": "tablePrefix",
        "EVALRUNS_EXPORTS_CONTAINER": "exportsContainerName",
        "EVALRUNS_SPILL_CONTAINER": "spillContainerName",
        "EVALRUNS_TASK_HUB": "taskHubName",
        "EVALRUNS_SUMMARISER_MODEL": "summariserModel",
    }
    for name, value in expected.items():
        assert app_settings[name] == value, name
    assert app_settings["EVALRUNS_SAS_EXPIRY_MINUTES"]["function"]["parameters"] == {
        "value_to_convert": "sasExpiryMinutes"
    }
    # Every EVALRUNS_ setting is one evalruns reads (Settings field x <- EVALRUNS_X).
    fields = set(Settings.model_fields)
    for name in app_settings:
        if name.startswith("EVALRUNS_"):
            assert name.removeprefix("EVALRUNS_").lower() in fields, name


def test_provider_endpoints_are_plain_settings_when_set(templates: Templates) -> None:
    main = templates["main.bicep"]
    endpoints = variable(main, "providerEndpoints")
    # One parameter per endpoint variable of the catalog (a new provider needs a line here).
    assert sorted(endpoints) == sorted(ENDPOINT_VARIABLES)
    params = main["parameters"]
    for name, param in endpoints.items():
        assert params[param]["type"] == "string", name
        assert params[param]["default"] == "", name
    # One { name, value } per endpoint...
    assert variable(main, "providerEndpointSettingList") == {
        "loop_type": {
            "type": "object",
            "detail": {"item_name": "endpoint", "object_name": "providerEndpoints"},
        },
        "condition": None,
        "config": {
            "name": {
                "operator": {
                    "type": "property_accessor",
                    "operands": {"operand_1": "endpoint", "operand_2": "key"},
                }
            },
            "value": {
                "operator": {
                    "type": "property_accessor",
                    "operands": {"operand_1": "endpoint", "operand_2": "value"},
                }
            },
        },
    }
    # ...and only the ones set: filter(providerEndpointSettingList, s => !empty(s.value)).
    assert variable(main, "providerEndpointSettings") == {
        "function": {
            "type": "filter",
            "parameters": {
                "input_array": "providerEndpointSettingList",
                "input_element": "setting",
                "expression": {
                    "operator": {
                        "type": "not",
                        "operands": {
                            "bool_value": {
                                "function": {
                                    "type": "empty",
                                    "parameters": {
                                        "item_to_test": {
                                            "operator": {
                                                "type": "property_accessor",
                                                "operands": {
                                                    "operand_1": "setting",
                                                    "operand_2": "value",
                                                },
                                            }
                                        }
                                    },
                                }
                            }
                        },
                    }
                },
            },
        }
    }


def test_provider_keys_are_key_vault_references(templates: Templates, app_settings: Any) -> None:
    main = templates["main.bicep"]
    # The template knows every key the catalog names (a new provider needs a line here).
    assert variable(main, "knownProviderKeys") == PROVIDER_KEY_VARIABLES
    loop = variable(main, "providerKeySettings")
    assert loop["loop_type"]["detail"]["array_name"] == "providerKeyNames"
    assert loop["config"] == {
        "name": "keyName",
        "value": "@Microsoft.KeyVault(VaultName=${names.keyVault};"
        "SecretName=${replace(keyName, '_', '-')})",
    }
    # Only known keys become settings: intersection(knownProviderKeys, requestedProviderKeys).
    assert variable(main, "providerKeyNames") == {
        "function": {
            "type": "intersection",
            "parameters": {"arg_1": "knownProviderKeys", "arg_2": "requestedProviderKeys"},
        }
    }
    # requestedProviderKeys = split(toUpper(replace(providerKeys, ' ', '')), ',')
    requested = variable(main, "requestedProviderKeys")["function"]
    assert requested["type"] == "split"
    assert requested["parameters"]["delimiter"] == ","
    upper = requested["parameters"]["input_string"]["function"]
    assert upper["type"] == "to_upper"
    assert upper["parameters"]["string_to_change"]["function"] == {
        "type": "replace",
        "parameters": {"original_string": "providerKeys", "old_string": " ", "new_string": ""},
    }


def test_nothing_secret_in_plain_text(app_settings: dict[str, Any]) -> None:
    secret_looking = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|CONNECTION_STRING)$")
    not_secret = {
        # identifiers, not credentials (see function-app.bicep and monitoring.bicep)
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }
    for name, value in app_settings.items():
        if secret_looking.search(name) and name not in not_secret:
            assert str(value).startswith("@Microsoft.KeyVault("), name
    assert (
        "Authentication=ManagedIdentity" in app_settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    )
    for path in scan.bicep_files(scan.INFRA):
        body = path.read_text(encoding="utf-8")
        for marker in ("listKeys(", "AccountKey=", "SharedAccessSignature", "@secure()"):
            assert marker not in body, f"{path}: {marker}"


# ---- Durable backend switch ----


def test_durable_task_scheduler_option(templates: Templates, app_settings: Any) -> None:
    dts = templates["app/durable-task-scheduler.bicep"]
    scheduler = one(dts, "Microsoft.DurableTask/schedulers")
    assert scheduler["properties"]["ipAllowlist"], "an empty allow list denies all traffic"
    hub = one(dts, "Microsoft.DurableTask/schedulers/taskHubs")
    assert hub == {"parent": "scheduler", "name": "taskHubName"}
    main = templates["main.bicep"]
    assert variable(main, "durableTaskSchedulerSettings") == {
        "operator": {
            "type": "conditional",
            "operands": {
                "condition": "useDurableTaskScheduler",
                "true_value": "durableTaskSchedulerSettingList",
                "false_value": [],
            },
        }
    }
    connection = app_settings["DURABLE_TASK_SCHEDULER_CONNECTION_STRING"]
    assert connection == (
        "Endpoint=${durableTaskScheduler.outputs.endpoint};"
        "Authentication=ManagedIdentity;ClientID=${identity.outputs.clientId}"
    )
    prefix = "AzureFunctionsJobHost__extensions__durableTask__storageProvider__"
    assert app_settings[prefix + "type"] == "azureManaged"
    assert app_settings[prefix + "connectionStringName"] == (
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"
    )
    # The overrides land on host.json's section, and the hub is the app setting in both modes.
    host = json.loads((scan.ROOT / "host.json").read_text())
    durable = host["extensions"]["durableTask"]
    assert isinstance(durable["storageProvider"], dict)
    assert durable["hubName"] == "%EVALRUNS_TASK_HUB%"


# ---- role assignments ----


def test_role_assignments(templates: Templates) -> None:
    found = {
        (a["role"], a["scope"], a["principal"], a["conditional"])
        for a in role_assignments(templates)
    }
    storage, insights = "Microsoft.Storage/storageAccounts", "Microsoft.Insights/components"
    vault, scheduler = "Microsoft.KeyVault/vaults", "Microsoft.DurableTask/schedulers"
    expected = {
        # Blob Data Owner includes generateUserDelegationKey: export links are signed with it.
        (BLOB_DATA_OWNER, storage, "appPrincipalId", False),
        (QUEUE_DATA_CONTRIBUTOR, storage, "appPrincipalId", False),
        (TABLE_DATA_CONTRIBUTOR, storage, "appPrincipalId", False),
        (METRICS_PUBLISHER, insights, "appPrincipalId", False),
        (SECRETS_USER, vault, "appPrincipalId", False),
        (SECRETS_OFFICER, vault, "deployerPrincipalId", True),
        (DURABLE_TASK_DATA_CONTRIBUTOR, scheduler, "appPrincipalId", False),
        (DURABLE_TASK_DATA_CONTRIBUTOR, scheduler, "deployerPrincipalId", True),
    }
    assert found == expected
    for assignment in role_assignments(templates):
        if assignment["principal"] == "appPrincipalId":
            assert assignment["principalType"] == "ServicePrincipal"
    # Everything the app identity gets is scoped to one resource, never the group.
    assert all(
        a["scope"] != "Microsoft.Resources/resourceGroups" for a in role_assignments(templates)
    )


def test_role_modules_get_the_identity_and_the_deployer(templates: Templates) -> None:
    modules = templates["main.bicep"]["modules"]
    identity_principal = {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "identity",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "outputs", "operand_2": "principalId"},
                    }
                },
            },
        }
    }
    for symbol in ("rbac", "durableTaskScheduler"):
        params = unwrap(modules[symbol]["config"])[0]["params"]
        assert params["appPrincipalId"] == identity_principal, symbol
        assert params["deployerPrincipalId"] == "principalId", symbol
    assert "rbac" in unwrap(modules["functionApp"]["config"])[0]["dependsOn"]


# ---- outputs, azd, packaging ----


def test_outputs_a_user_needs_next(templates: Templates) -> None:
    outputs = templates["main.bicep"]["outputs"]
    assert outputs["AZURE_FUNCTION_APP_URL"]["value"] == (
        "https://${functionApp.outputs.defaultHostName}"
    )
    for name in (
        "AZURE_FUNCTION_APP_NAME",
        "AZURE_RESOURCE_GROUP",
        "AZURE_KEY_VAULT_NAME",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "EVALRUNS_URL",
        "DURABLE_BACKEND",
    ):
        assert name in outputs, name


def test_azure_yaml_deploys_the_function_app(templates: Templates) -> None:
    azure_yaml = (scan.ROOT / "azure.yaml").read_text(encoding="utf-8")
    service = re.search(r"^services:\n  (\w+):\n((?:    .*\n)+)", azure_yaml, re.MULTILINE)
    assert service, azure_yaml
    name, body = service.group(1), service.group(2)
    assert re.search(r"^    host: function$", body, re.MULTILINE)
    assert re.search(r"^    language: python$", body, re.MULTILINE)
    assert re.search(r"^    project: \.$", body, re.MULTILINE)
    assert re.search(r"^  path: infra$", azure_yaml, re.MULTILINE)
    # azd finds the app by the azd-service-name tag.
    service_param = templates["app/function-app.bicep"]["parameters"]["serviceName"]
    assert service_param["default"] == name


def test_funcignore_keeps_development_files_out_of_the_package() -> None:
    lines = set((scan.ROOT / ".funcignore").read_text().split())
    assert {"tests", "devhost", "infra", "bench", "azure.yaml", ".azure"} <= lines


# ---- Bicep that offline tools can parse ----

FORBIDDEN_SYNTAX = {
    "import": re.compile(r"^\s*import\b", re.MULTILINE),
    "user-defined function": re.compile(r"^\s*func\s", re.MULTILINE),
    "user-defined type": re.compile(r"^\s*type\s+\w+\s*=", re.MULTILINE),
    "typed variable": re.compile(r"^\s*var\s+\w+\s+\w+\s*=", re.MULTILINE),
    "nullable type": re.compile(r"^\s*(?:param|output)\s+\w+\s+\w+\?", re.MULTILINE),
    "spread": re.compile(r"\.\.\."),
    "safe dereference": re.compile(r"\.\?|\?\.|\?\["),
    "coalesce": re.compile(r"\?\?"),
    "non-null assertion": re.compile(r"\w!(?:\.|\[|\s|$)"),
    "export/sealed/discriminator": re.compile(r"@(?:export|sealed|discriminator)\b"),
    "extension": re.compile(r"^\s*extension\s", re.MULTILINE),
}


def _code_only(source: str) -> str:
    """Bicep without comments and string contents (descriptions may say anything)."""
    source = re.sub(r"'(?:[^'\\\n]|\\.)*'", "''", source)
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    return re.sub(r"//[^\n]*", "", source)


@pytest.mark.parametrize(
    "path", scan.bicep_files(scan.INFRA), ids=lambda p: p.relative_to(scan.INFRA).as_posix()
)
def test_no_syntax_offline_tools_cannot_parse(path: Path) -> None:
    code = _code_only(path.read_text(encoding="utf-8"))
    used = [name for name, pattern in FORBIDDEN_SYNTAX.items() if pattern.search(code)]
    assert used == []


def test_readme_documents_every_azd_variable() -> None:
    readme = (scan.ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Deploying to Azure") :]
    section = section[: section.index("\n## ", 1)]
    variables = re.findall(r"\$\{(\w+)", text("main.parameters.json"))
    for name in variables:
        if name not in {"AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID"}:
            assert re.search(rf"\b{name}\b", section), f"README, Deploying to Azure: add {name}"
    for must in ("azd up", "az keyvault secret set", "x-functions-key", "Security posture"):
        assert must in section, must

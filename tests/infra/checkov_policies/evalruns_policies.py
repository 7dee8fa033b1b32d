"""evalruns' own checkov policies for the Bicep in infra/ (loaded through .checkov.yaml).

checkov's built-in Bicep/ARM checks do not cover these settings, which are the security
posture the README promises: no shared keys, no public blobs, no local auth on telemetry,
RBAC-only Key Vault, no basic publishing credentials, identity-based deployment storage, TLS 1.2
on the SCM (deployment) endpoint, blob and container soft delete.
Each check fails when the setting is missing too, so a default can never slip through.

This file is imported by checkov (its own virtualenv), not by pytest.
"""

from __future__ import annotations

from typing import Any

from checkov.bicep.checks.resource.base_resource_check import BaseResourceCheck
from checkov.bicep.checks.resource.registry import registry
from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.common.util.data_structures_utils import find_in_dict


class _ExpectedValue(BaseResourceCheck):
    """Passes only when `key` (a path into the resource) holds one of `expected`."""

    def __init__(
        self,
        *,
        id: str,
        name: str,
        resource: str,
        key: str,
        expected: tuple[Any, ...],
        category: CheckCategories,
    ) -> None:
        self.key = key
        self.expected = expected
        super().__init__(name=name, id=id, categories=(category,), supported_resources=(resource,))

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        value = find_in_dict(conf, self.key)
        if isinstance(value, str):
            value = value.lower()
            expected = tuple(v.lower() if isinstance(v, str) else v for v in self.expected)
        else:
            expected = self.expected
        # bool is an int in Python: compare types too, so `1` never passes for `true`.
        ok = any(value == e and type(value) is type(e) for e in expected)
        return CheckResult.PASSED if ok else CheckResult.FAILED

    def get_evaluated_keys(self) -> list[str]:
        return [self.key]


def _expect(**kwargs: Any) -> None:
    # checkov loads external checks once per scanned directory; register each check once.
    if kwargs["id"] not in registry.check_id_to_enitity_map:
        _ExpectedValue(**kwargs)


STORAGE = "Microsoft.Storage/storageAccounts"

_expect(
    id="CKV_EVALRUNS_1",
    name="Storage account disables shared key (account key and SAS key) access",
    resource=STORAGE,
    key="properties/allowSharedKeyAccess",
    expected=(False,),
    category=CheckCategories.IAM,
)
_expect(
    id="CKV_EVALRUNS_2",
    name="Storage account disallows anonymous public blob access",
    resource=STORAGE,
    key="properties/allowBlobPublicAccess",
    expected=(False,),
    category=CheckCategories.GENERAL_SECURITY,
)
_expect(
    id="CKV_EVALRUNS_3",
    name="Application Insights accepts only Entra ID authenticated telemetry",
    resource="Microsoft.Insights/components",
    key="properties/DisableLocalAuth",
    expected=(True,),
    category=CheckCategories.IAM,
)
_expect(
    id="CKV_EVALRUNS_4",
    name="Log Analytics workspace disables local (shared key) authentication",
    resource="Microsoft.OperationalInsights/workspaces",
    key="properties/features/disableLocalAuth",
    expected=(True,),
    category=CheckCategories.IAM,
)
_expect(
    id="CKV_EVALRUNS_5",
    name="Key Vault authorizes with Azure RBAC, not access policies",
    resource="Microsoft.KeyVault/vaults",
    key="properties/enableRbacAuthorization",
    expected=(True,),
    category=CheckCategories.IAM,
)
_expect(
    id="CKV_EVALRUNS_6",
    name="Function app disallows basic (user name and password) publishing credentials",
    resource="Microsoft.Web/sites/basicPublishingCredentialsPolicies",
    key="properties/allow",
    expected=(False,),
    category=CheckCategories.IAM,
)
_expect(
    id="CKV_EVALRUNS_7",
    name="Flex Consumption deployment storage is reached with a managed identity",
    resource="Microsoft.Web/sites",
    key="properties/functionAppConfig/deployment/storage/authentication/type",
    expected=("UserAssignedIdentity", "SystemAssignedIdentity"),
    category=CheckCategories.IAM,
)
_expect(
    id="CKV_EVALRUNS_8",
    name="Function app SCM (deployment) endpoint requires TLS 1.2 or later",
    resource="Microsoft.Web/sites",
    key="properties/siteConfig/scmMinTlsVersion",
    expected=("1.2", "1.3"),
    category=CheckCategories.NETWORKING,
)
_expect(
    id="CKV_EVALRUNS_9",
    name="Blob soft delete is enabled",
    resource="Microsoft.Storage/storageAccounts/blobServices",
    key="properties/deleteRetentionPolicy/enabled",
    expected=(True,),
    category=CheckCategories.BACKUP_AND_RECOVERY,
)
_expect(
    id="CKV_EVALRUNS_10",
    name="Container soft delete is enabled",
    resource="Microsoft.Storage/storageAccounts/blobServices",
    key="properties/containerDeleteRetentionPolicy/enabled",
    expected=(True,),
    category=CheckCategories.BACKUP_AND_RECOVERY,
)

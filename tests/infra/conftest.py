"""One scan per test session: checkov once over a copy of infra/ plus deliberately broken and
insecure variants of its files, and pycep over the same files."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra import scan


@dataclass(frozen=True)
class Mutation:
    """One file of infra/ with one change; `expect` is the check id it must fail, or
    PARSE_ERROR when the change breaks the syntax."""

    name: str
    file: str
    old: str
    new: str
    expect: str


PARSE_ERROR = "parse error"

MUTATIONS = [
    # Broken Bicep: checkov exits 0 on these; the suite must not.
    Mutation(
        "unbalanced-brace",
        "main.bicep",
        "module identity 'app/identity.bicep' = {",
        "module identity 'app/identity.bicep' = {{",
        PARSE_ERROR,
    ),
    Mutation(
        "unterminated-string", "app/storage.bicep", "name: 'default'", "name: 'default", PARSE_ERROR
    ),
    # Insecure settings.
    Mutation(
        "public-blob-access",
        "app/storage.bicep",
        "allowBlobPublicAccess: false",
        "allowBlobPublicAccess: true",
        "CKV_EVALRUNS_2",
    ),
    Mutation(
        "shared-key-enabled",
        "app/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: true",
        "CKV_EVALRUNS_1",
    ),
    Mutation(  # left out: Azure's default is to allow shared keys
        "shared-key-unset",
        "app/storage.bicep",
        "    allowSharedKeyAccess: false\n",
        "",
        "CKV_EVALRUNS_1",
    ),
    Mutation(
        "public-container",
        "app/storage.bicep",
        "publicAccess: 'None'",
        "publicAccess: 'Blob'",
        "CKV_AZURE_34",
    ),
    Mutation(
        "storage-tls-1.0",
        "app/storage.bicep",
        "minimumTlsVersion: 'TLS1_2'",
        "minimumTlsVersion: 'TLS1_0'",
        "CKV_AZURE_44",
    ),
    Mutation(
        "http-allowed",
        "app/function-app.bicep",
        "httpsOnly: true",
        "httpsOnly: false",
        "CKV_AZURE_70",
    ),
    Mutation(
        "app-tls-1.0",
        "app/function-app.bicep",
        "minTlsVersion: '1.2'",
        "minTlsVersion: '1.0'",
        "CKV_AZURE_145",
    ),
    Mutation(
        "scm-tls-1.0",
        "app/function-app.bicep",
        "scmMinTlsVersion: '1.2'",
        "scmMinTlsVersion: '1.0'",
        "CKV_EVALRUNS_8",
    ),
    Mutation(
        "blob-soft-delete-off",
        "app/storage.bicep",
        "deleteRetentionPolicy: {\n      enabled: true",
        "deleteRetentionPolicy: {\n      enabled: false",
        "CKV_EVALRUNS_9",
    ),
    Mutation(
        "container-soft-delete-off",
        "app/storage.bicep",
        "containerDeleteRetentionPolicy: {\n      enabled: true",
        "containerDeleteRetentionPolicy: {\n      enabled: false",
        "CKV_EVALRUNS_10",
    ),
    Mutation(
        "ftp-enabled",
        "app/function-app.bicep",
        "ftpsState: 'Disabled'",
        "ftpsState: 'AllAllowed'",
        "CKV_AZURE_78",
    ),
    Mutation(
        "basic-publishing-credentials",
        "app/function-app.bicep",
        "allow: false",
        "allow: true",
        "CKV_EVALRUNS_6",
    ),
    Mutation(
        "deployment-storage-by-connection-string",
        "app/function-app.bicep",
        "type: 'UserAssignedIdentity'",
        "type: 'StorageAccountConnectionString'",
        "CKV_EVALRUNS_7",
    ),
    Mutation(
        "telemetry-local-auth",
        "app/monitoring.bicep",
        "DisableLocalAuth: true",
        "DisableLocalAuth: false",
        "CKV_EVALRUNS_3",
    ),
    Mutation(
        "log-analytics-local-auth",
        "app/monitoring.bicep",
        "disableLocalAuth: true",
        "disableLocalAuth: false",
        "CKV_EVALRUNS_4",
    ),
    Mutation(
        "key-vault-access-policies",
        "app/keyvault.bicep",
        "enableRbacAuthorization: true",
        "enableRbacAuthorization: false",
        "CKV_EVALRUNS_5",
    ),
    Mutation(
        "key-vault-purge-protection-off",
        "app/keyvault.bicep",
        "enablePurgeProtection: true",
        "enablePurgeProtection: false",
        "CKV_AZURE_110",
    ),
]


@dataclass(frozen=True)
class Scan:
    tree: Path  # tree/infra: a copy of infra/; tree/mutants/<name>/<file>: one change each
    report: dict[str, Any]
    parsed: dict[Path, dict[str, Any]]

    @property
    def infra(self) -> Path:
        return self.tree / "infra"

    def mutant(self, name: str) -> Path:
        return self.tree / "mutants" / name

    def findings(self, directory: Path) -> scan.Findings:
        return scan.findings_for(self.report, directory)


def _write_tree(tree: Path) -> None:
    shutil.copytree(scan.INFRA, tree / "infra")
    for mutation in MUTATIONS:
        text = (scan.INFRA / mutation.file).read_text(encoding="utf-8")
        if mutation.old not in text:
            continue  # test_broken_or_insecure_variant_fails reports it
        target = tree / "mutants" / mutation.name / mutation.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text.replace(mutation.old, mutation.new, 1), encoding="utf-8")


@pytest.fixture(scope="session")
def infra_scan(tmp_path_factory: pytest.TempPathFactory) -> Scan:
    tree = tmp_path_factory.mktemp("infra-scan")
    _write_tree(tree)
    try:
        report = scan.run_checkov(tree)
        parsed = scan.parse_bicep(scan.bicep_files(tree))
    except scan.ScanError as error:
        pytest.fail(str(error))
    return Scan(tree=tree, report=report, parsed=parsed)


def _strip_line_numbers(value: Any) -> Any:
    """pycep (with checkov's settings) adds __start_line__/__end_line__ to every block."""
    if isinstance(value, dict):
        return {k: _strip_line_numbers(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list):
        return [_strip_line_numbers(v) for v in value]
    return value


@pytest.fixture(scope="session")
def templates(infra_scan: Scan) -> dict[str, dict[str, Any]]:
    """The parsed templates of infra/, by path relative to infra/ ('main.bicep', 'app/...')."""
    result = {}
    for path, parsed in infra_scan.parsed.items():
        if path.is_relative_to(infra_scan.infra):
            key = path.relative_to(infra_scan.infra).as_posix()
            if not parsed["ok"]:
                pytest.fail(
                    f"infra/{key} does not parse, so it cannot be checked: {parsed['error']}"
                )
            result[key] = _strip_line_numbers(parsed["template"])
    return result

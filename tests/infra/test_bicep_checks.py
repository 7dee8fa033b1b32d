"""infra/ parses and passes the offline security scan; broken or insecure variants do not."""

from __future__ import annotations

import re

import pytest

from tests.infra import scan
from tests.infra.conftest import MUTATIONS, PARSE_ERROR, Mutation, Scan

# evalruns' own policies, read from their file (checkov imports it, pytest cannot).
POLICIES = scan.ROOT / "tests/infra/checkov_policies/evalruns_policies.py"
POLICY_SOURCE = POLICIES.read_text(encoding="utf-8")
CUSTOM_CHECKS = set(re.findall(r'^\s+id="(CKV_EVALRUNS_\d+)",$', POLICY_SOURCE, re.MULTILINE))


def _shown(lines: list[str], infra_scan: Scan) -> str:
    """Problems with paths of the real infra/ instead of the scanned copy."""
    return "\n".join(lines).replace(str(infra_scan.infra), str(scan.INFRA))


def test_every_bicep_file_parses(infra_scan: Scan) -> None:
    files = scan.bicep_files(infra_scan.infra)
    expected = {p.relative_to(scan.INFRA) for p in scan.bicep_files(scan.INFRA)}
    assert {p.relative_to(infra_scan.infra) for p in files} == expected
    assert len(files) >= 8
    found = infra_scan.findings(infra_scan.infra)
    assert found.parsing_errors == [], _shown(found.problems(infra_scan.parsed), infra_scan)
    errors = {
        str(path): infra_scan.parsed[path].get("error")
        for path in files
        if not infra_scan.parsed[path]["ok"]
    }
    assert errors == {}


def test_security_scan_finds_nothing(infra_scan: Scan) -> None:
    found = infra_scan.findings(infra_scan.infra)
    assert found.problems(infra_scan.parsed) == [], _shown(
        found.problems(infra_scan.parsed), infra_scan
    )
    assert found.failed == []
    # The scan really looked at the template: the resources that carry the posture were checked.
    checked = {check["resource"].rsplit(".", 1)[0] for check in found.passed}
    assert {
        "Microsoft.Storage/storageAccounts",
        "Microsoft.Web/sites",
        "Microsoft.KeyVault/vaults",
        "Microsoft.Insights/components",
        "Microsoft.OperationalInsights/workspaces",
    } <= checked


def test_evalruns_policies_are_read_from_their_file() -> None:
    # One id per policy, numbered from 1 without gaps, each with an insecure variant (MUTATIONS).
    count = POLICY_SOURCE.count("\n_expect(")
    assert count >= 7
    numbered = {f"CKV_EVALRUNS_{n}" for n in range(1, count + 1)}
    assert numbered == CUSTOM_CHECKS
    caught = {mutation.expect for mutation in MUTATIONS}
    assert caught >= CUSTOM_CHECKS, f"no mutation for {sorted(CUSTOM_CHECKS - caught)}"


def test_evalruns_policies_are_loaded_and_pass(infra_scan: Scan) -> None:
    # A policy file checkov failed to load would silently pass everything: require each to run.
    passed = {check["check_id"] for check in infra_scan.findings(infra_scan.infra).passed}
    assert passed >= CUSTOM_CHECKS, f"not run: {sorted(CUSTOM_CHECKS - passed)}"


def test_checkov_is_the_pinned_version(infra_scan: Scan) -> None:
    pinned = re.search(
        r"^checkov==(\S+)", (scan.ROOT / "requirements-infra.txt").read_text(), re.MULTILINE
    )
    assert pinned, "requirements-infra.txt must pin checkov"
    assert infra_scan.report["summary"]["checkov_version"] == pinned.group(1)


def _skip_entries() -> list[tuple[str, list[str]]]:
    """(check id, comment lines just above it) for each skip-check entry of .checkov.yaml."""
    entries, comments, in_skips = [], [], False
    for line in scan.CONFIG.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not line.startswith((" ", "-", "#")) and stripped:
            in_skips = stripped.startswith("skip-check:")
            comments = []
            continue
        if not in_skips:
            continue
        if stripped.startswith("#"):
            comments.append(stripped.lstrip("# "))
        elif stripped.startswith("- "):
            entries.append((stripped[2:].split("#")[0].strip(), comments))
            comments = []
    return entries


def test_every_skipped_check_has_a_reason() -> None:
    entries = _skip_entries()
    assert entries, ".checkov.yaml lists no skip-check entries"
    for check_id, reason in entries:
        assert re.fullmatch(r"CKV2?_[A-Z]+_\d+", check_id), check_id
        assert len(" ".join(reason)) >= 40, f"{check_id} needs its reason in a comment above it"
    ids = [check_id for check_id, _ in entries]
    assert len(ids) == len(set(ids))
    assert not set(ids) & CUSTOM_CHECKS, "evalruns' own policies are never skipped"


def test_skipped_checks_do_not_run_and_nothing_is_skipped_inline(infra_scan: Scan) -> None:
    skipped = {check_id for check_id, _ in _skip_entries()}
    found = infra_scan.findings(infra_scan.infra)
    assert not skipped & {c["check_id"] for c in found.passed + found.failed}
    assert found.skipped == []  # no other skips, e.g. `checkov:skip=` comments in Bicep
    for path in scan.bicep_files(scan.INFRA):
        assert "checkov:skip" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_broken_or_insecure_variant_fails(infra_scan: Scan, mutation: Mutation) -> None:
    source = (scan.INFRA / mutation.file).read_text(encoding="utf-8")
    assert mutation.old in source, f"infra/{mutation.file} no longer has {mutation.old!r}"
    found = infra_scan.findings(infra_scan.mutant(mutation.name))
    problems = found.problems(infra_scan.parsed)
    assert problems, f"{mutation.name}: the checks passed a variant they must reject"
    if mutation.expect == PARSE_ERROR:
        # checkov only lists the file (and exits 0); pycep says why.
        assert [p.rsplit("/", 1)[-1] for p in found.parsing_errors] == [
            mutation.file.rsplit("/", 1)[-1]
        ]
        path = infra_scan.mutant(mutation.name) / mutation.file
        assert not infra_scan.parsed[path.resolve()]["ok"]
        assert "could not parse" in problems[0]
    else:
        assert mutation.expect in found.failed_ids, problems
        # ...and the same check passes on the real file, so the change is what it caught.
        original = infra_scan.findings(infra_scan.infra)
        assert mutation.expect in {c["check_id"] for c in original.passed}

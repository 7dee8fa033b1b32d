"""The offline checks of infra/: every Bicep file parses, and checkov finds nothing.

checkov runs from its own virtualenv (`.venv/checkov`, made by `make test` from
requirements-infra.txt; `CHECKOV=/path/to/checkov` overrides it) with .checkov.yaml, the
Bicep framework only and --skip-download, so nothing leaves the machine.

checkov exits 0 when it cannot parse a file: it only lists the file under parsing_errors in
its report. So the report is read, not the exit code, and every Bicep file is also parsed
with pycep (the parser checkov uses) to say why a file does not parse.

By hand:  .venv/bin/python -m tests.infra.scan [DIR ...]   (default: infra; exit 1 on problems)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
CONFIG = ROOT / ".checkov.yaml"
PARSE_SCRIPT = Path(__file__).with_name("pycep_parse.py")
DEFAULT_CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
INSTALL_HINT = (
    "checkov is installed by `make test` (or `make .venv/checkov/.installed`) into "
    ".venv/checkov from requirements-infra.txt; set CHECKOV=/path/to/checkov to use another."
)


class ScanError(RuntimeError):
    """checkov could not run, or answered something other than its JSON report."""


def checkov_executable() -> Path:
    path = Path(os.environ.get("CHECKOV", DEFAULT_CHECKOV))
    if not path.exists():
        raise ScanError(f"no checkov at {path}. {INSTALL_HINT}")
    return path


def _tool_environment() -> dict[str, str]:
    env = dict(os.environ)
    # checkov resolves parameters through a graph whose iteration order follows string hashes;
    # a fixed seed makes a run reproducible (tests/infra/test_template.py also keeps parameter
    # defaults unambiguous across files, which is what made that order matter).
    env["PYTHONHASHSEED"] = "0"
    env.setdefault("LOG_LEVEL", "WARNING")
    return env


def run_checkov(directory: Path) -> dict[str, Any]:
    """One checkov run over `directory` (and its subdirectories); its JSON report.

    One directory per run: with several --directory options checkov 3.3.30 prints one report
    per directory, each repeating the results of the others.
    """
    command = [
        str(checkov_executable()),
        "--config-file",
        str(CONFIG),
        "--framework",
        "bicep",
        "--skip-download",
        "--output",
        "json",
        "--directory",
        str(directory),
    ]
    completed = subprocess.run(
        command,
        cwd=ROOT,  # .checkov.yaml's external-checks-dir is relative to the repository
        env=_tool_environment(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise ScanError(
            f"checkov exited {completed.returncode} without a JSON report:\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}"
        ) from error
    if not isinstance(report, dict):
        raise ScanError(f"checkov printed {type(report).__name__}, not one report (--framework?)")
    if "results" not in report:
        # With no Bicep file to scan, checkov prints only the summary counts.
        report = {"check_type": "bicep", "results": {}, "summary": report}
    return report


def parse_bicep(files: list[Path]) -> dict[Path, dict[str, Any]]:
    """pycep's verdict per file: {"ok": True, "template": ...} or {"ok": False, "error": ...}."""
    python = checkov_executable().with_name("python")
    completed = subprocess.run(
        [str(python), str(PARSE_SCRIPT), *map(str, files)],
        env=_tool_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise ScanError(f"pycep_parse.py failed:\n{completed.stderr[-2000:]}")
    return {Path(path): result for path, result in json.loads(completed.stdout).items()}


def bicep_files(directory: Path) -> list[Path]:
    return sorted(p.resolve() for p in directory.rglob("*.bicep"))


def _within(path: str, directory: Path) -> bool:
    return Path(path).resolve().is_relative_to(directory.resolve())


@dataclass
class Findings:
    """What one scanned directory got from checkov (and pycep)."""

    directory: Path
    parsing_errors: list[str] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    passed: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_ids(self) -> set[str]:
        return {check["check_id"] for check in self.failed}

    def problems(self, parsed: dict[Path, dict[str, Any]] | None = None) -> list[str]:
        """Every reason to fail the build, one line each (empty: all good)."""
        lines = []
        for path in self.parsing_errors:
            reason = (parsed or {}).get(Path(path).resolve(), {}).get("error", "")
            lines.append(f"{path}: checkov could not parse it. {_one_line(reason)}".strip())
        for path, result in (parsed or {}).items():
            if _within(str(path), self.directory) and not result["ok"]:
                line = f"{path}: pycep could not parse it. {_one_line(result['error'])}"
                if not any(str(path) in known for known in lines):
                    lines.append(line)
        for check in self.failed:
            lines.append(
                f"{check['file_abs_path']}: {check['check_id']} {check['check_name']} "
                f"({check['resource']}, lines {check.get('file_line_range')})"
            )
        return lines


def _one_line(text: str) -> str:
    return " ".join(text.split())


def findings_for(report: dict[str, Any], directory: Path) -> Findings:
    """The part of a (possibly multi-directory) report that concerns `directory`."""
    results = report.get("results", {})
    found = Findings(directory=directory)
    found.parsing_errors = [p for p in results.get("parsing_errors", []) if _within(p, directory)]
    for key, target in (
        ("failed_checks", found.failed),
        ("passed_checks", found.passed),
        ("skipped_checks", found.skipped),
    ):
        target.extend(c for c in results.get(key, []) if _within(c["file_abs_path"], directory))
    return found


def main(argv: list[str]) -> int:
    directories = [Path(arg).resolve() for arg in argv] or [INFRA]
    status = 0
    for directory in directories:
        try:
            report = run_checkov(directory)
            parsed = parse_bicep(bicep_files(directory))
        except ScanError as error:
            print(error, file=sys.stderr)
            return 2
        found = findings_for(report, directory)
        problems = found.problems(parsed)
        files = bicep_files(directory)
        print(
            f"{directory}: {len(files)} Bicep files, {len(found.parsing_errors)} parsing errors, "
            f"{len(found.passed)} checks passed, {len(found.failed)} failed "
            f"(checkov {report.get('summary', {}).get('checkov_version', '?')})"
        )
        for line in problems:
            print(f"  FAIL {line}")
        status = status or (1 if problems or not files else 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""`pip install .` gives a working `evalruns` command and `python -m evalruns`, and declares
every distribution the library imports."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project installed on its own into a fresh directory (dependencies come from the
    test environment, which has them pinned: this checks what the package itself carries)."""
    target = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    subprocess.run(
        [*pip, "--target", str(target), str(ROOT)],
        check=True,
        timeout=240,
    )
    return target


def run_installed(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Python with only the installed copy of evalruns on its path (not the checkout)."""
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(
        [sys.executable, *args], cwd=target, env=env, capture_output=True, text=True, timeout=60
    )


def test_python_dash_m_and_the_script_run_the_cli(installed: Path) -> None:
    module = run_installed(installed, "-m", "evalruns", "--help")
    assert module.returncode == 0, module.stderr
    assert "usage: evalruns" in module.stdout
    where = run_installed(installed, "-c", "import evalruns; print(evalruns.__file__)")
    assert where.stdout.strip().startswith(str(installed))  # the installed copy, not the tree
    script = (installed / "bin" / "evalruns").read_text()
    assert "from evalruns.cli import main" in script
    # The catalog ships inside the package.
    catalog = run_installed(
        installed, "-c", "from evalruns.providers.catalog import load_catalog; load_catalog()"
    )
    assert catalog.returncode == 0, catalog.stderr


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _with_dependencies(names: set[str]) -> set[str]:
    """`names` and every distribution they require here, transitively, extras included: a
    declared package may import its optional extras when they happen to be installed (httpx
    loads rich and click for its command line when present)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            extras = importlib.metadata.metadata(name).get_all("Provides-Extra") or []
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # an extra that is not installed here
        for text in requires:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in ["", *extras]):
                todo.append(_name(requirement.name))
    return seen


def test_every_distribution_the_library_imports_is_declared(installed: Path) -> None:
    metadata = next(installed.glob("evalruns-*.dist-info")) / "METADATA"
    declared = {
        _name(line.split(":", 1)[1].strip())
        for line in metadata.read_text().splitlines()
        if line.startswith("Requires-Dist:")
    }
    assert {"httpx", "pydantic", "azure-data-tables", "azure-storage-blob"} <= declared
    # Import every module of the library, then name the distributions that were loaded.
    probe = run_installed(
        installed,
        "-c",
        "import importlib, json, pkgutil, sys, evalruns\n"
        "for m in pkgutil.walk_packages(evalruns.__path__, 'evalruns.'):\n"
        "    if m.name != 'evalruns.__main__': importlib.import_module(m.name)\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules})))",
    )
    assert probe.returncode == 0, probe.stderr
    # Modules every interpreter here loads at start-up (site hooks) are not the library's.
    bare = run_installed(installed, "-c", "import json, sys; print(json.dumps(list(sys.modules)))")
    top_level = set(json.loads(probe.stdout)) - {n.split(".")[0] for n in json.loads(bare.stdout)}
    owners = importlib.metadata.packages_distributions()
    used = {
        _name(dist)
        for module in top_level - set(sys.stdlib_module_names)
        for dist in owners.get(module, [])
    } - {"evalruns"}
    missing = used - _with_dependencies(declared)
    assert not missing, f"imported but not declared: {sorted(missing)}"

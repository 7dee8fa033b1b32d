"""`evalruns.lazy`: a module imported once, on first use, whole even when threads race."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalruns.lazy import lazy

SLOW_MODULE = """
import time
time.sleep(0.2)  # long enough for every thread to ask while the import runs
LAST = "set at the end"
"""


@pytest.fixture
def slow_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    (tmp_path / "evalruns_lazy_probe.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "evalruns_lazy_probe"
    sys.modules.pop("evalruns_lazy_probe", None)


def test_nothing_is_imported_before_an_attribute_is_read(slow_module: str) -> None:
    module = lazy(slow_module)
    assert slow_module not in sys.modules
    assert module.LAST == "set at the end"
    assert slow_module in sys.modules


def test_threads_that_race_on_first_use_all_see_the_whole_module(slow_module: str) -> None:
    module = lazy(slow_module)
    seen: list[str] = []
    threads = [threading.Thread(target=lambda: seen.append(module.LAST)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == ["set at the end"] * 8


def test_a_missing_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = lazy("evalruns.names").NO_SUCH_NAME

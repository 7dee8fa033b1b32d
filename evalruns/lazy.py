"""Modules imported on first use, for code that must import fast.

The Functions host imports `function_app` (every function module) before it can index or
call anything, and most processes only ever run a few functions: a function module names the
library modules it calls with `lazy(...)`, so each is imported when a call first needs it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module, imported the first time one of its attributes is read.

    Thread-safe: `importlib.import_module` holds the import system's lock on the module
    while it runs, so a second thread waits for the first to finish it (the worker runs sync
    functions in threads). `importlib.util.LazyLoader` is not used: on Python 3.11 it can hand
    a thread a module another thread is still executing.
    """

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str) -> LazyModule:
    """The module `name`, imported when one of its attributes is first read."""
    return LazyModule(name)

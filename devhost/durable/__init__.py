"""An in-process Durable Functions engine that replays orchestrators like the real extension.

Two engines share one replay core (``_core.py``, ``_instance.py``, ``_shim.py``, ``_dtfx.py``):
``engine.py`` (``DurableEngine``, step by step on a virtual clock, for tests) and ``host.py``
(``DurableHost``, real time, concurrent, persisted in Azure Tables - see ``_records.py``).
``server.py`` serves the client API of either (``backend.py``).
Generic: it works with any ``DFApp`` and imports nothing from the application under test.

Names are imported on first use: devhost's Python worker process imports only ``_worker``
from this package, and importing everything here would load the host's side there as well
(the engines, the RPC server and the Azure Storage SDK: a few hundred milliseconds more before
the worker can index the app), none of which the worker uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ActivityCall": "._types",
    "DiscardedMessage": "._types",
    "DurableBackend": ".backend",
    "DurableEngine": ".engine",
    "DurableEngineError": "._types",
    "DurableHost": ".host",
    "EngineConfigurationError": "._worker",
    "EngineLimitation": "._shim",
    "EngineSummary": "._types",
    "EventType": "._history",
    "InstanceExistsError": "._types",
    "InstanceGoneError": "._types",
    "InstanceInfo": "._types",
    "InstanceNotFoundError": "._types",
    "InstanceSnapshot": "._status",
    "InvalidInstanceIdError": "._types",
    "InvalidOperationError": "._types",
    "MemoryStore": "._store",
    "OrchestrationStatus": "._history",
    "OrchestrationStatusView": "._status",
    "OrchestrationStuck": "._types",
    "RpcServer": ".server",
    "Step": "._types",
    "Store": "._store",
    "UnknownFunctionError": "._types",
    "VirtualClock": "._types",
    "app_functions": "._worker",
    "running_engine": ".engine",
}

if TYPE_CHECKING:
    from ._history import EventType, OrchestrationStatus
    from ._shim import EngineLimitation
    from ._status import InstanceSnapshot, OrchestrationStatusView
    from ._store import MemoryStore, Store
    from ._types import (
        ActivityCall,
        DiscardedMessage,
        DurableEngineError,
        EngineSummary,
        InstanceExistsError,
        InstanceGoneError,
        InstanceInfo,
        InstanceNotFoundError,
        InvalidInstanceIdError,
        InvalidOperationError,
        OrchestrationStuck,
        Step,
        UnknownFunctionError,
        VirtualClock,
    )
    from ._worker import EngineConfigurationError, app_functions
    from .backend import DurableBackend
    from .engine import DurableEngine, running_engine
    from .host import DurableHost
    from .server import RpcServer


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


# A literal list (not list(_EXPORTS)): linters and type checkers read the names from it.
__all__ = [
    "ActivityCall",
    "DiscardedMessage",
    "DurableBackend",
    "DurableEngine",
    "DurableEngineError",
    "DurableHost",
    "EngineConfigurationError",
    "EngineLimitation",
    "EngineSummary",
    "EventType",
    "InstanceExistsError",
    "InstanceGoneError",
    "InstanceInfo",
    "InstanceNotFoundError",
    "InstanceSnapshot",
    "InvalidInstanceIdError",
    "InvalidOperationError",
    "MemoryStore",
    "OrchestrationStatus",
    "OrchestrationStatusView",
    "OrchestrationStuck",
    "RpcServer",
    "Step",
    "Store",
    "UnknownFunctionError",
    "VirtualClock",
    "app_functions",
    "running_engine",
]

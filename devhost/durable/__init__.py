"""An in-process Durable Functions engine that replays orchestrators like the real extension.

Two engines share one replay core (``_core.py``, ``_instance.py``, ``_shim.py``, ``_dtfx.py``):
``engine.py`` (``DurableEngine``, step by step on a virtual clock, for tests) and ``host.py``
(``DurableHost``, real time, concurrent, persisted in Azure Tables - see ``_records.py``).
``server.py`` serves the client API of either (``backend.py``).
Generic: it works with any ``DFApp`` and imports nothing from the application under test.
"""

from __future__ import annotations

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

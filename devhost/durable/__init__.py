"""An in-process Durable Functions engine that replays orchestrators like the real extension.

See ``engine.py`` for the scheduling model, ``_shim.py`` and ``_dtfx.py`` for the replay rules
transcribed from the extension and DurableTask.Core, and ``server.py`` for the client API.
Generic: it works with any ``DFApp`` and imports nothing from the application under test.
"""

from __future__ import annotations

from ._history import EventType, OrchestrationStatus
from ._shim import EngineLimitation
from ._status import InstanceSnapshot, OrchestrationStatusView
from ._types import (
    ActivityCall,
    DiscardedMessage,
    DurableEngineError,
    InstanceExistsError,
    InstanceGoneError,
    InstanceInfo,
    InstanceNotFoundError,
    InvalidInstanceIdError,
    OrchestrationStuck,
    Step,
    UnknownFunctionError,
    VirtualClock,
)
from ._worker import EngineConfigurationError, app_functions
from .engine import DurableEngine, running_engine
from .server import RpcServer

__all__ = [
    "ActivityCall",
    "DiscardedMessage",
    "DurableEngine",
    "DurableEngineError",
    "EngineConfigurationError",
    "EngineLimitation",
    "EventType",
    "InstanceExistsError",
    "InstanceGoneError",
    "InstanceInfo",
    "InstanceNotFoundError",
    "InstanceSnapshot",
    "InvalidInstanceIdError",
    "OrchestrationStatus",
    "OrchestrationStatusView",
    "OrchestrationStuck",
    "RpcServer",
    "Step",
    "UnknownFunctionError",
    "VirtualClock",
    "app_functions",
    "running_engine",
]

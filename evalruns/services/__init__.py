"""Use cases of evalruns, and the one container that wires settings to storage and providers."""

from evalruns.services.container import Services, get_services, reset_services

__all__ = ["Services", "get_services", "reset_services"]

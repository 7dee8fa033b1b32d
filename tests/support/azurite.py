"""Kept for modules written before Azurite's launcher moved to devhost (remove when unused)."""

from devhost.azurite import ACCOUNT, ACCOUNT_KEY, Azurite, free_port, running_azurite

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "Azurite", "free_port", "running_azurite"]

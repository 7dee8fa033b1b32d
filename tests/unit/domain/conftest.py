"""Fixtures for the example definitions."""

from __future__ import annotations

import pytest

from evalruns.domain.definitions import DefinitionInput
from tests.unit.domain.examples import example


@pytest.fixture
def library_funding() -> DefinitionInput:
    """5 × 5 × 5 levels; every Reliance level has two wording options."""
    return example("library_funding")


@pytest.fixture
def shift_policy() -> DefinitionInput:
    """3 × 3 levels given with the `values` shorthand, lower-case names, no preamble."""
    return example("shift_policy")


@pytest.fixture
def single_prompt() -> DefinitionInput:
    """No dimensions at all."""
    return example("single_prompt")

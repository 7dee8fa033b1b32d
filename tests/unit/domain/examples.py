"""Example definitions: copies of the shared examples, so CI needs only the repository."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalruns.domain.definitions import DefinitionInput

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_NAMES = ("library_funding", "shift_policy", "single_prompt")


def example_body(name: str) -> dict[str, Any]:
    """The JSON body of an example, as a client would POST it."""
    body: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return body


def example(name: str) -> DefinitionInput:
    return DefinitionInput.model_validate(example_body(name))

"""Validation of definitions (`POST /api/definitions` bodies)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evalruns.domain.definitions import MAX_SCENARIOS, DefinitionInput, Dimension
from tests.unit.domain.examples import EXAMPLE_NAMES, example_body

# --- factories -------------------------------------------------------------------------------


def values_dimension(name: str, *values: str) -> dict[str, Any]:
    return {"name": name, "values": list(values)}


def level(score: int, *options: str, label: str | None = None) -> dict[str, Any]:
    return {"score": score, "label": label or f"level {score}", "options": list(options)}


def levels_dimension(name: str, *levels: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "levels": list(levels)}


def body(
    template: str = "A plain prompt.", *dimensions: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": "test definition",
        "template": template,
        "dimensions": list(dimensions),
        **extra,
    }


def rejection(data: dict[str, Any]) -> str:
    """Validate `data`, expect a ValidationError and return its text."""
    with pytest.raises(ValidationError) as caught:
        DefinitionInput.model_validate(data)
    return str(caught.value)


def uniform_dimensions(count: int, levels_each: int, prefix: str = "D") -> list[dict[str, Any]]:
    return [
        values_dimension(f"{prefix}{index}", *(f"v{value}" for value in range(levels_each)))
        for index in range(count)
    ]


# --- the examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count"), [("library_funding", 125), ("shift_policy", 9), ("single_prompt", 1)]
)
def test_examples_validate_with_their_scenario_count(name: str, count: int) -> None:
    definition = DefinitionInput.model_validate(example_body(name))

    assert definition.scenario_count == count


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_wire_form_is_camel_case_and_round_trips(name: str) -> None:
    definition = DefinitionInput.model_validate(example_body(name))

    wire = definition.to_json_dict()
    again = DefinitionInput.model_validate(wire)

    assert "scenarioCount" in wire
    assert wire["scenarioCount"] == definition.scenario_count
    assert again == definition


def test_preamble_defaults_to_empty_and_dimensions_to_empty() -> None:
    definition = DefinitionInput.model_validate({"name": "n", "template": "Just ask."})

    assert definition.preamble == ""
    assert definition.dimensions == []
    assert definition.scenario_count == 1


# --- the `values` shorthand ------------------------------------------------------------------


def test_values_shorthand_gives_levels_scored_from_one_with_a_single_option() -> None:
    dimension = Dimension.model_validate(values_dimension("Size", "small", "medium", "large"))

    assert [(lv.score, lv.label, lv.options) for lv in dimension.levels] == [
        (1, "small", ["small"]),
        (2, "medium", ["medium"]),
        (3, "large", ["large"]),
    ]


def test_values_shorthand_equals_the_long_form() -> None:
    short = Dimension.model_validate(values_dimension("Size", "small", "large"))
    long = Dimension.model_validate(
        levels_dimension("Size", level(1, "small", label="small"), level(2, "large", label="large"))
    )

    assert short == long


def test_five_values_are_allowed() -> None:
    dimension = Dimension.model_validate(values_dimension("D", "a", "b", "c", "d", "e"))

    assert [lv.score for lv in dimension.levels] == [1, 2, 3, 4, 5]


def test_more_than_five_values_are_rejected() -> None:
    message = rejection(body("[D]", values_dimension("D", "a", "b", "c", "d", "e", "f")))

    assert "at most 5" in message


def test_values_and_levels_together_are_rejected() -> None:
    both = {"name": "D", "values": ["a"], "levels": [level(1, "a")]}

    assert "either 'levels' or 'values'" in rejection(body("[D]", both))


def test_values_must_be_a_list() -> None:
    assert "must be a list" in rejection(body("[D]", {"name": "D", "values": "a, b"}))


# --- template --------------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["", " ", "  \n\t  "])
def test_empty_or_blank_template_is_rejected(template: str) -> None:
    message = rejection(body(template))

    assert "template is empty" in message


def test_missing_template_is_rejected() -> None:
    message = rejection({"name": "no template"})

    assert "template" in message


# --- dimension names and placeholders --------------------------------------------------------


@pytest.mark.parametrize("second", ["Reliance", "reliance", "RELIANCE"])
def test_duplicate_dimension_names_are_rejected_case_insensitively(second: str) -> None:
    data = body("[Reliance]", values_dimension("Reliance", "a"), values_dimension(second, "b"))

    assert "defined twice" in rejection(data)


def test_placeholder_without_a_dimension_is_rejected_and_named() -> None:
    message = rejection(body("Uses [Known] and [Unknown].", values_dimension("Known", "k")))

    assert "[Unknown]" in message
    assert "[Known]" not in message


def test_every_missing_placeholder_is_named() -> None:
    message = rejection(body("[Zeta] then [Alpha]"))

    assert "[Alpha], [Zeta]" in message


@pytest.mark.parametrize("placeholder", ["[reliance]", "[RELIANCE]", "[ReLiAnCe]"])
def test_placeholders_match_dimension_names_case_insensitively(placeholder: str) -> None:
    definition = DefinitionInput.model_validate(
        body(f"People {placeholder} on it.", values_dimension("Reliance", "rely"))
    )

    assert definition.scenario_count == 1


def test_dimension_not_used_in_the_template_is_allowed() -> None:
    definition = DefinitionInput.model_validate(
        body("No placeholders.", values_dimension("Unused", "a", "b"))
    )

    assert definition.scenario_count == 2


@pytest.mark.parametrize("name", ["", "[D]", "a]b", "two\nlines"])
def test_dimension_names_that_cannot_be_placeholders_are_rejected(name: str) -> None:
    rejection(body("plain", values_dimension(name, "a")))


# --- levels and options ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "dimension",
    [
        pytest.param({"name": "D", "levels": []}, id="empty-levels"),
        pytest.param({"name": "D", "values": []}, id="empty-values"),
        pytest.param({"name": "D"}, id="neither"),
    ],
)
def test_dimension_without_levels_is_rejected(dimension: dict[str, Any]) -> None:
    message = rejection(body("[D]", dimension))

    assert "levels" in message


def test_level_without_options_is_rejected() -> None:
    message = rejection(body("[D]", levels_dimension("D", level(1))))

    assert "options" in message


@pytest.mark.parametrize("blank", ["", " ", "\t\n"])
def test_level_with_a_blank_option_is_rejected(blank: str) -> None:
    rejection(body("[D]", levels_dimension("D", level(1, "fine", blank))))


def test_blank_value_in_shorthand_is_rejected() -> None:
    rejection(body("[D]", values_dimension("D", "fine", "   ")))


def test_duplicate_level_scores_are_rejected() -> None:
    message = rejection(body("[D]", levels_dimension("D", level(2, "a"), level(2, "b"))))

    assert "different score" in message


@pytest.mark.parametrize("score", [-1, 0, 6, 10])
def test_scores_outside_one_to_five_are_rejected(score: int) -> None:
    rejection(body("[D]", levels_dimension("D", level(score, "x"))))


@pytest.mark.parametrize("score", [1, 5])
def test_scores_at_the_bounds_are_accepted(score: int) -> None:
    definition = DefinitionInput.model_validate(
        body("[D]", levels_dimension("D", level(score, "x")))
    )

    assert definition.dimensions[0].levels[0].score == score


def test_levels_need_not_be_contiguous_or_ordered() -> None:
    definition = DefinitionInput.model_validate(
        body("[D]", levels_dimension("D", level(5, "high"), level(1, "low")))
    )

    assert [lv.score for lv in definition.dimensions[0].levels] == [5, 1]
    assert definition.scenario_count == 2


# --- the scenario limit ----------------------------------------------------------------------


def test_scenario_count_is_the_product_of_level_counts() -> None:
    data = body(
        "plain",
        values_dimension("A", "1", "2"),
        values_dimension("B", "1", "2", "3"),
        values_dimension("C", "1", "2", "3", "4"),
    )

    assert DefinitionInput.model_validate(data).scenario_count == 24


def test_exactly_the_scenario_limit_is_accepted() -> None:
    # 5^5 × 2^5 = 100,000
    dimensions = uniform_dimensions(5, 5, "F") + uniform_dimensions(5, 2, "T")

    definition = DefinitionInput.model_validate(body("plain", *dimensions))

    assert definition.scenario_count == MAX_SCENARIOS == 100_000


def test_one_level_over_the_scenario_limit_is_rejected() -> None:
    # 5^5 × 2^4 × 3 = 150,000
    dimensions = uniform_dimensions(5, 5, "F") + uniform_dimensions(4, 2, "T")
    dimensions.append(values_dimension("Extra", "a", "b", "c"))

    message = rejection(body("plain", *dimensions))

    assert "150,000" in message
    assert "100,000" in message

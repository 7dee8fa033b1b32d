"""Expansion of definitions into scenarios: order, ids, prompts, wording choice."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import pytest

from evalruns.domain.definitions import PLACEHOLDER, DefinitionInput
from evalruns.domain.expansion import Scenario, expand, scenario_at, scenario_id
from tests.unit.domain.examples import EXAMPLE_NAMES, example, example_body

# --- factories -------------------------------------------------------------------------------


def definition(template: str, *dimensions: dict[str, Any], preamble: str = "") -> DefinitionInput:
    return DefinitionInput.model_validate(
        {"name": "test", "preamble": preamble, "template": template, "dimensions": dimensions}
    )


def values_dimension(name: str, *values: str) -> dict[str, Any]:
    return {"name": name, "values": list(values)}


def cube() -> DefinitionInput:
    """5 × 5 × 5 with distinct one-option wording, so each prompt shows its levels."""
    return definition(
        "[A] / [B] / [C]",
        *(values_dimension(name, *(f"{name}{score}" for score in range(1, 6))) for name in "ABC"),
    )


def dumps(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    return [scenario.to_json_dict() for scenario in scenarios]


def options_by_level(source: DefinitionInput, dimension: str) -> dict[int, list[str]]:
    for candidate in source.dimensions:
        if candidate.name == dimension:
            return {lv.score: lv.options for lv in candidate.levels}
    raise KeyError(dimension)


def chosen_option(prompt: str, options: list[str]) -> str:
    used = [option for option in options if option in prompt]
    assert len(used) == 1, (prompt, options)
    return used[0]


# --- size, order, ids ------------------------------------------------------------------------


def test_five_by_five_by_five_yields_125_scenarios() -> None:
    scenarios = list(expand(cube()))

    assert len(scenarios) == 125


def test_order_is_the_cartesian_product_with_the_last_dimension_fastest() -> None:
    scenarios = list(expand(cube()))

    expected = [{"A": a, "B": b, "C": c} for a, b, c in itertools.product(range(1, 6), repeat=3)]
    assert [scenario.dimensions for scenario in scenarios] == expected
    assert scenarios[0].prompt == "A1 / B1 / C1"
    assert scenarios[1].prompt == "A1 / B1 / C2"
    assert scenarios[5].prompt == "A1 / B2 / C1"
    assert scenarios[-1].prompt == "A5 / B5 / C5"


def test_order_with_unequal_level_counts_is_mixed_radix() -> None:
    source = definition(
        "[X][Y][Z]",
        values_dimension("X", "x1", "x2"),
        values_dimension("Y", "y1", "y2", "y3"),
        values_dimension("Z", "z1", "z2", "z3", "z4"),
    )

    prompts = [scenario.prompt for scenario in expand(source)]

    assert prompts == [
        f"x{x}y{y}z{z}" for x, y, z in itertools.product(range(1, 3), range(1, 4), range(1, 5))
    ]


def test_ids_and_numbers_count_from_one_in_expansion_order() -> None:
    scenarios = list(expand(cube()))

    assert [scenario.number for scenario in scenarios] == list(range(1, 126))
    assert [scenario.id for scenario in scenarios] == [f"s{n:06d}" for n in range(1, 126)]
    assert scenarios[0].id == "s000001"
    assert scenarios[-1].id == "s000125"


@pytest.mark.parametrize(
    ("number", "expected"), [(1, "s000001"), (125, "s000125"), (100_000, "s100000")]
)
def test_scenario_id_is_zero_padded_to_six_digits(number: int, expected: str) -> None:
    assert scenario_id(number) == expected


def test_scenario_ids_sort_in_expansion_order() -> None:
    ids = [scenario.id for scenario in expand(cube())]

    assert sorted(ids) == ids


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_expansion_is_identical_across_calls(name: str) -> None:
    source = example(name)

    assert dumps(list(expand(source))) == dumps(list(expand(source)))


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_expansion_is_identical_after_revalidating_the_definition_from_json(name: str) -> None:
    original = example(name)
    again = DefinitionInput.model_validate_json(original.model_dump_json())
    from_body = DefinitionInput.model_validate(example_body(name))

    assert dumps(list(expand(again))) == dumps(list(expand(original)))
    assert dumps(list(expand(from_body))) == dumps(list(expand(original)))


def test_scenario_at_matches_full_expansion(library_funding: DefinitionInput) -> None:
    scenarios = list(expand(library_funding))

    for index in (0, 1, 24, 25, 62, 124):
        assert scenario_at(library_funding, index) == scenarios[index]


def test_library_funding_first_and_last_scenarios(library_funding: DefinitionInput) -> None:
    first = scenario_at(library_funding, 0)
    last = scenario_at(library_funding, 124)

    assert first.dimensions == {"Reliance": 1, "Traffic": 1, "BusinessView": 1}
    assert first.name == "Reliance=barely, Traffic=very light, BusinessView=indifferent"
    assert last.dimensions == {"Reliance": 5, "Traffic": 5, "BusinessView": 5}
    assert "the only ambulance route to the hospital" in last.prompt
    assert "say they will move out of town" in last.prompt


# --- filling placeholders --------------------------------------------------------------------


def test_placeholders_are_filled_case_insensitively() -> None:
    source = definition(
        "Residents [reliance] on it; roads carry [TRAFFIC].",
        values_dimension("Reliance", "barely depend", "heavily depend"),
        values_dimension("Traffic", "no traffic"),
    )

    prompts = [scenario.prompt for scenario in expand(source)]

    assert prompts == [
        "Residents barely depend on it; roads carry no traffic.",
        "Residents heavily depend on it; roads carry no traffic.",
    ]


def test_lower_case_placeholder_in_the_library_example() -> None:
    body = example_body("library_funding")
    body["template"] = body["template"].replace("[Reliance]", "[reliance]")
    lowered = DefinitionInput.model_validate(body)
    reliance = options_by_level(lowered, "Reliance")

    for scenario in expand(lowered):
        assert "[reliance]" not in scenario.prompt
        option = chosen_option(scenario.prompt, reliance[scenario.dimensions["Reliance"]])
        assert f"on weekends {option} on it." in scenario.prompt


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_placeholder_is_replaced(name: str) -> None:
    for scenario in expand(example(name)):
        assert PLACEHOLDER.search(scenario.prompt) is None, scenario.prompt


def test_each_prompt_shows_the_wording_of_its_levels(shift_policy: DefinitionInput) -> None:
    actions = options_by_level(shift_policy, "action")
    staff = options_by_level(shift_policy, "staff")

    for scenario in expand(shift_policy):
        assert actions[scenario.dimensions["action"]][0] in scenario.prompt
        assert staff[scenario.dimensions["staff"]][0] in scenario.prompt


def test_a_placeholder_used_twice_gets_the_same_wording_both_times() -> None:
    source = definition(
        "First [Mood], then [mood] again.",
        {"name": "Mood", "levels": [{"score": 1, "label": "m", "options": ["calm", "serene"]}]},
    )

    (scenario,) = expand(source)

    assert scenario.prompt in {"First calm, then calm again.", "First serene, then serene again."}


def test_option_text_is_inserted_literally() -> None:
    source = definition("Path: [P]", values_dimension("P", r"C:\temp\1 \g<0> $1"))

    (scenario,) = expand(source)

    assert scenario.prompt == r"Path: C:\temp\1 \g<0> $1"


# --- wording options -------------------------------------------------------------------------


def test_wording_choice_is_deterministic(library_funding: DefinitionInput) -> None:
    again = DefinitionInput.model_validate(example_body("library_funding"))

    first = [scenario.prompt for scenario in expand(library_funding)]
    second = [scenario.prompt for scenario in expand(library_funding)]
    third = [scenario.prompt for scenario in expand(again)]

    assert first == second == third


def test_chosen_option_belongs_to_the_scenarios_level(library_funding: DefinitionInput) -> None:
    reliance = options_by_level(library_funding, "Reliance")

    for scenario in expand(library_funding):
        chosen_option(scenario.prompt, reliance[scenario.dimensions["Reliance"]])


def test_different_scenarios_use_different_options(library_funding: DefinitionInput) -> None:
    reliance = options_by_level(library_funding, "Reliance")
    used: dict[int, set[str]] = defaultdict(set)

    for scenario in expand(library_funding):
        score = scenario.dimensions["Reliance"]
        used[score].add(chosen_option(scenario.prompt, reliance[score]))

    all_used = set().union(*used.values())
    assert len(all_used) > len(reliance), "only one option per level was ever used"
    # 25 scenarios per level: a level stuck on one option would be a hash that ignores the rest.
    assert all(len(options) == 2 for options in used.values()), dict(used)


# --- preamble, names, no dimensions ----------------------------------------------------------


def test_preamble_is_carried_to_every_scenario(library_funding: DefinitionInput) -> None:
    scenarios = list(expand(library_funding))

    assert library_funding.preamble
    assert {scenario.preamble for scenario in scenarios} == {library_funding.preamble}


def test_missing_preamble_is_empty_in_scenarios(shift_policy: DefinitionInput) -> None:
    assert {scenario.preamble for scenario in expand(shift_policy)} == {""}


def test_scenario_names_list_dimension_labels_in_definition_order(
    shift_policy: DefinitionInput,
) -> None:
    names = [scenario.name for scenario in expand(shift_policy)]

    assert names[0] == "action=reduce weekend hours, staff=students working part time"
    assert names[-1] == "action=lay off one baker, staff=the owner's relatives"
    assert len(set(names)) == 9


def test_definition_without_dimensions_yields_the_template_once(
    single_prompt: DefinitionInput,
) -> None:
    scenarios = list(expand(single_prompt))

    assert len(scenarios) == 1
    (only,) = scenarios
    assert only.prompt == single_prompt.template
    assert only.id == "s000001"
    assert only.number == 1
    assert only.dimensions == {}
    assert only.name == "Base scenario"


# --- positions -------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [-1, 125, 126, 10_000])
def test_scenario_at_out_of_range_raises_index_error(
    library_funding: DefinitionInput, index: int
) -> None:
    with pytest.raises(IndexError):
        scenario_at(library_funding, index)


def test_scenario_at_out_of_range_without_dimensions(single_prompt: DefinitionInput) -> None:
    assert scenario_at(single_prompt, 0).prompt == single_prompt.template
    with pytest.raises(IndexError):
        scenario_at(single_prompt, 1)


@pytest.mark.parametrize("start", [0, 1, 60, 124])
def test_expand_from_start_continues_the_sequence(
    library_funding: DefinitionInput, start: int
) -> None:
    everything = list(expand(library_funding))

    rest = list(expand(library_funding, start))

    assert rest == everything[start:]
    assert rest[0].number == start + 1


def test_expand_from_the_end_is_empty(library_funding: DefinitionInput) -> None:
    assert list(expand(library_funding, 125)) == []


def test_expand_is_lazy(library_funding: DefinitionInput) -> None:
    iterator = expand(library_funding)

    assert next(iterator).id == "s000001"
    assert next(iterator).id == "s000002"

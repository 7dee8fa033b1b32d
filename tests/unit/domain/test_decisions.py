"""Reading the 1-5 decision code out of a model's answer."""

from __future__ import annotations

import pytest

from evalruns.domain.decisions import ERROR, OTHER, PENDING, extract_decision


def test_codes_outside_one_to_five_are_named() -> None:
    assert (OTHER, ERROR, PENDING) == ("other", "error", "pending")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Rating: 4", "4"),
        ("Rating: 1\nThe roads matter more.", "1"),
        ("Rating:5", "5"),
        ("Rating = 2", "2"),
        ("Rating 3", "3"),
        ("Rating:\n\n4", "4"),
        ("Rating: 4/5", "4"),
        ("Rating: 4.", "4"),
        ("Rating: 4, because ...", "4"),
    ],
)
def test_rating_label_is_read(text: str, code: str) -> None:
    assert extract_decision(text) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("In 2 ways... Rating: 4", "4"),
        ("Considering 3 factors and 1 risk, Rating: 5", "5"),
        ("Option 1 costs 2 lanes.\n\nRating: 3", "3"),
    ],
)
def test_rating_label_wins_over_earlier_digits(text: str, code: str) -> None:
    assert extract_decision(text) == code


@pytest.mark.parametrize("text", ["rating: 2", "RATING: 2", "RaTiNg: 2", "My rating: 2"])
def test_rating_label_is_case_insensitive(text: str) -> None:
    assert extract_decision(text) == "2"


@pytest.mark.parametrize(
    "text",
    [
        "Rating: **5**",
        "**Rating: 5**",
        "**Rating:** 5",
        "**Rating**: 5",
        "In 2 ways **Rating**: 5",
        "After 3 points, **Rating:** 5",
    ],
)
def test_rating_in_markdown_bold_is_read(text: str) -> None:
    assert extract_decision(text) == "5"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("I'd say 3.", "3"),
        ("4", "4"),
        ("(2) keep the roads", "2"),
        ("Score 4/5", "4"),
        ("Probably a 1, maybe.", "1"),
        ("I would pick 5!", "5"),
        ("Between 4 and 5: 4", "4"),
    ],
)
def test_without_a_rating_label_the_first_standalone_digit_counts(text: str, code: str) -> None:
    assert extract_decision(text) == code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("About 10 people, so 2", "2"),
        ("Since 2024 the answer is 4", "4"),
        ("Maybe 3.5 overall, final answer 4", "4"),
        ("Nearly 1,500 residents; 3", "3"),
        ("Model v2 says 4", "4"),
        ("The 3rd option; 2", "2"),
    ],
)
def test_digits_inside_numbers_and_words_are_skipped(text: str, code: str) -> None:
    assert extract_decision(text) == code


@pytest.mark.parametrize(
    "text",
    [
        "10",
        "2024",
        "3.5",
        "3,5",
        "1,000",
        "0.25",
        "v2",
        "4th",
        "Rating: 10",
        "Rating: 3.5",
        "Rating: 3,5",
    ],
)
def test_numbers_that_merely_contain_one_to_five_give_other(text: str) -> None:
    assert extract_decision(text) == OTHER


@pytest.mark.parametrize("text", ["0", "6", "7 8 9", "Rating: 0", "Rating: 6", "0 or 9"])
def test_zero_and_six_to_nine_are_not_decisions(text: str) -> None:
    assert extract_decision(text) == OTHER


def test_an_invalid_rating_label_falls_back_to_a_standalone_digit() -> None:
    assert extract_decision("Rating: 6, I mean 3") == "3"


@pytest.mark.parametrize("text", ["", "   ", "No opinion.", "I cannot answer that."])
def test_no_digit_at_all_gives_other(text: str) -> None:
    assert extract_decision(text) == OTHER

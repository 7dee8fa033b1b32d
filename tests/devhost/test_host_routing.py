"""Route templates as the Functions host (ASP.NET Core routing) parses and matches them."""

from __future__ import annotations

import re

import pytest

from devhost.routing import (
    Route,
    RouteTemplateError,
    build_template,
    find_route,
    parse_template,
    routes_conflict,
)


def match(route: str, path: str, prefix: str = "api") -> dict[str, str] | None:
    return build_template(prefix, route).match(path)


def test_literals_match_ignoring_case_and_a_trailing_slash() -> None:
    assert match("runs/latest", "/api/runs/latest") == {}
    assert match("runs/latest", "/API/Runs/LATEST/") == {}
    assert match("runs/latest", "/api/runs") is None
    assert match("runs/latest", "/api/runs/latest/extra") is None
    assert match("runs/latest", "/runs/latest") is None


def test_parameters_take_one_non_empty_segment() -> None:
    assert match("runs/{runId}", "/api/runs/r-1") == {"runId": "r-1"}
    assert match("runs/{runId}", "/api/runs") is None
    assert match("runs/{runId}/transcripts", "/api/runs//transcripts") is None
    assert match("runs/{runId}", "/api/runs/a/b") is None


def test_an_empty_route_prefix_maps_routes_at_the_root() -> None:
    assert match("health", "/health", prefix="") == {}
    assert match("health", "/api/health", prefix="") is None


def test_optional_and_default_parameters_may_be_missing_at_the_end() -> None:
    assert match("items/{category}/{page?}", "/api/items/books") == {"category": "books"}
    assert match("items/{category}/{page?}", "/api/items/books/2") == {
        "category": "books",
        "page": "2",
    }
    assert match("pages/{page=1}/{size=20}", "/api/pages") == {"page": "1", "size": "20"}
    assert match("pages/{page=1}/{size=20}", "/api/pages/3") == {"page": "3", "size": "20"}


def test_catch_all_takes_the_rest_of_the_path() -> None:
    assert match("files/{*path}", "/api/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert match("files/{*path}", "/api/files") == {}
    assert match("files/{**path}", "/api/files/x") == {"path": "x"}


@pytest.mark.parametrize(
    ("constraint", "accepted", "refused"),
    [
        ("int", ["5", "-12", "2147483647"], ["x", "1.5", "2147483648", ""]),
        ("long", ["9223372036854775807"], ["9223372036854775808", "ten"]),
        ("bool", ["true", "False"], ["yes", "1"]),
        (
            "guid",
            ["0f8fad5b-d9cb-469f-a165-70867728950e", "0f8fad5bd9cb469fa16570867728950e"],
            ["nope"],
        ),
        ("alpha", ["abcXYZ"], ["abc1", "a-b"]),
        ("decimal", ["1.5", "-3", "1,000.25"], ["1e5", "abc"]),
        ("double", ["1.5", "1e5", "-0.25"], ["abc"]),
        ("datetime", ["2024-01-31", "2024-01-31T10:00:00"], ["yesterday"]),
        ("min(10)", ["10", "99"], ["9", "x"]),
        ("max(10)", ["-3", "10"], ["11"]),
        ("range(1,3)", ["1", "3"], ["0", "4"]),
        ("minlength(3)", ["abc"], ["ab"]),
        ("maxlength(3)", ["abc"], ["abcd"]),
        ("length(2)", ["ab"], ["a", "abc"]),
        ("length(2,3)", ["ab", "abc"], ["a", "abcd"]),
        ("regex(^r-\\d+$)", ["r-1", "R-22"], ["r-", "x-1"]),
        ("file", ["report.csv"], ["report"]),
        ("nonfile", ["report"], ["report.csv"]),
    ],
)
def test_inline_constraints(constraint: str, accepted: list[str], refused: list[str]) -> None:
    template = build_template("api", f"v/{{value:{constraint}}}")

    for value in accepted:
        assert template.match(f"/api/v/{value}") == {"value": value}, value
    for value in refused:
        assert template.match(f"/api/v/{value}") is None, value


def test_constraints_combine_and_skip_missing_optional_values() -> None:
    template = build_template("api", "runs/{id:int:min(1)}/{page:int?}")

    assert template.match("/api/runs/5") == {"id": "5"}
    assert template.match("/api/runs/5/2") == {"id": "5", "page": "2"}
    assert template.match("/api/runs/0") is None
    assert template.match("/api/runs/5/x") is None


def test_complex_segments_give_earlier_parameters_the_longest_value() -> None:
    assert match("files/{name}.{ext}", "/api/files/report.tar.gz") == {
        "name": "report.tar",
        "ext": "gz",
    }
    assert match("files/{name}.{ext?}", "/api/files/readme") == {"name": "readme"}
    assert match("files/{name}.{ext?}", "/api/files/a.b") == {"name": "a", "ext": "b"}
    assert match("runs/{id}-export.csv", "/api/runs/r1-export.csv") == {"id": "r1"}
    assert match("runs/{id}-export.csv", "/api/runs/r1.csv") is None


def test_escaped_braces_are_literals() -> None:
    template = parse_template("api/{{literal}}/{id}")

    assert template.match("/api/{literal}/7") == {"id": "7"}


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("/hello", "cannot appear consecutively"),
        ("a//b", "cannot appear consecutively"),
        ("{a}{b}", "two consecutive parameters"),
        ("{*rest}/tail", "catch-all parameter can only appear as the last segment"),
        ("{*rest?}", "catch-all parameter cannot be marked optional"),
        ("a/{id}/{ID}", "appears more than one time"),
        ("{id:nosuch}", "could not be resolved to a type"),
        ("{page=1?}", "optional parameter cannot have default value"),
        ("a?b", "cannot contain the '?' character"),
        ("{open", "incomplete parameter"),
        ("x/{a?}.{b}", "optional parameter must be at the end of the segment"),
        ("x/{a}-{b?}", "Only a period (.) can precede an optional parameter"),
    ],
)
def test_templates_aspnet_core_refuses(route: str, message: str) -> None:
    with pytest.raises(RouteTemplateError, match=re.escape(message)):
        build_template("api", route)


def test_a_template_may_start_with_a_slash_when_there_is_no_prefix() -> None:
    assert match("/{*route}", "/anything/here", prefix="") == {"route": "anything/here"}


def test_first_matching_route_wins_and_methods_filter_routes() -> None:
    routes = [
        Route("items", build_template("api", "items/{category}"), frozenset({"GET"}), "function"),
        Route("items_new", build_template("api", "items/new"), None, "function"),
    ]

    assert find_route(routes, "GET", "/api/items/new") == (routes[0], {"category": "new"})
    assert find_route(routes, "POST", "/api/items/new") == (routes[1], {})
    assert find_route(routes, "POST", "/api/items/old") is None


def test_route_conflicts_follow_the_host() -> None:
    get, post = frozenset({"GET"}), frozenset({"POST"})

    assert routes_conflict("runs", get, "/runs/", get)
    assert routes_conflict("Runs", None, "runs", post)
    assert not routes_conflict("runs", get, "runs", post)
    assert not routes_conflict("runs/{id}", get, "runs/{runId}", get)

"""Route templates as the Functions host parses and matches them (ASP.NET Core routing).

The host maps every HTTP trigger to ``{routePrefix}/{route}`` with a legacy ASP.NET Core
``Route`` (``WebJobsRouteBuilder.MapFunctionRoute``) whose inline constraints come from
``DefaultInlineConstraintResolver``, plus an ``HttpMethodRouteConstraint`` when the trigger lists
methods. Routes are tried in order and the first match wins; a route whose method constraint
fails simply does not match, so a wrong method is a 404, not a 405.

Supported template syntax: literal segments (case-insensitive, ``{{``/``}}`` escape braces),
``{name}``, ``{name?}``, ``{name=default}``, ``{*rest}``/``{**rest}`` (last segment only),
inline constraints ``{id:int}``, ``{id:min(1):max(9)}``, ``{x:regex(^a+$)}``, and complex
segments such as ``{name}.{ext}`` or ``{file}.{ext?}``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

Constraint = Callable[[str], bool]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_DECIMAL_MAX = Decimal("79228162514264337593543950335")
_FLOAT_MAX = 3.4028234663852886e38
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d{1,3}(,\d{3})*|\d+)?(\.\d*)?\s*$")
_FLOAT = re.compile(r"^\s*[+-]?(\d[\d,]*)?(\.\d*)?([eE][+-]?\d+)?\s*$")
_GUID_FORMATS = (
    re.compile(r"^[0-9a-f]{32}$", re.I),
    re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I),
    re.compile(r"^\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}$", re.I),
    re.compile(r"^\([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\)$", re.I),
)
_DATETIME_FORMATS = (
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y/%m/%d",
    "%d %B %Y",
    "%B %d, %Y",
    "%Y-%m-%d %H:%M:%S",
)


class RouteTemplateError(ValueError):
    """A template ASP.NET Core would refuse (the host logs it and skips the function)."""


# -- constraints (``DefaultInlineConstraintResolver``'s map, invariant culture) ----------------


def _integer_in(bounds: tuple[int, int]) -> Constraint:
    def check(value: str) -> bool:
        return bool(_INTEGER.match(value)) and bounds[0] <= int(value) <= bounds[1]

    return check


def _is_bool(value: str) -> bool:
    return value.strip().casefold() in ("true", "false")


def _is_decimal(value: str) -> bool:
    if not _NUMBER.match(value) or not any(c.isdigit() for c in value):
        return False
    try:
        return abs(Decimal(value.strip().replace(",", ""))) <= _DECIMAL_MAX
    except InvalidOperation:
        return False


def _float_check(limit: float) -> Constraint:
    def check(value: str) -> bool:
        text = value.strip()
        if text.lstrip("+-") in ("NaN", "Infinity", "∞"):
            return True
        if not _FLOAT.match(value) or not any(c.isdigit() for c in value.split("e")[0]):
            return False
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            return False
        # .NET Core 3.0+ parses out-of-range values to infinity instead of failing.
        return math.isfinite(number) or limit > 0

    return check


def _is_guid(value: str) -> bool:
    text = value.strip()
    return any(pattern.match(text) for pattern in _GUID_FORMATS)


def _is_datetime(value: str) -> bool:
    """An approximation of ``DateTime.TryParse`` with the invariant culture."""
    text = value.strip()
    if not text:
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        pass
    for pattern in _DATETIME_FORMATS:
        try:
            datetime.strptime(text, pattern)
            return True
        except ValueError:
            continue
    return False


def _is_file(value: str) -> bool:
    """``FileNameRouteConstraint``: the last segment has a dot with something after it."""
    last = value.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return 0 <= dot < len(last) - 1


def _long_argument(name: str, text: str) -> int:
    if not _INTEGER.match(text):
        raise RouteTemplateError(
            f"Could not create an instance of type '{name}' with the arguments '{text}'"
        )
    return int(text)


def _resolve_constraint(text: str) -> Constraint:
    """``DefaultInlineConstraintResolver.ResolveConstraint`` for one ``name(args)`` reference."""
    match = re.fullmatch(r"([A-Za-z]+)(?:\((.*)\))?", text, re.S)
    if match is None:
        raise _unresolved(text)
    name, argument = match.group(1).casefold(), match.group(2)
    simple: dict[str, Constraint] = {
        "int": _integer_in(_INT32),
        "long": _integer_in(_INT64),
        "bool": _is_bool,
        "decimal": _is_decimal,
        "double": _float_check(1.0),
        "float": _float_check(_FLOAT_MAX),
        "guid": _is_guid,
        "datetime": _is_datetime,
        "alpha": lambda value: re.fullmatch(r"[a-z]*", value, re.I) is not None,
        "required": lambda value: value != "",
        "file": _is_file,
        "nonfile": lambda value: not _is_file(value),
    }
    if name in simple:
        if argument is not None:
            raise RouteTemplateError(
                f"Could not find a constructor for constraint type '{name}' with 1 argument."
            )
        return simple[name]
    if argument is None:
        raise _unresolved(text)
    if name == "regex":
        try:
            pattern = re.compile(argument, re.I)
        except re.error as error:
            raise RouteTemplateError(f"Invalid regex constraint '{argument}': {error}") from None
        return lambda value: pattern.search(value) is not None
    parts = [part.strip() for part in argument.split(",")]
    if name in ("minlength", "maxlength", "min", "max") and len(parts) == 1:
        bound = _long_argument(name, parts[0])
        if name == "minlength":
            return lambda value: len(value) >= bound
        if name == "maxlength":
            return lambda value: len(value) <= bound
        check_long = _integer_in(_INT64)
        if name == "min":
            return lambda value: check_long(value) and int(value) >= bound
        return lambda value: check_long(value) and int(value) <= bound
    if name == "length" and len(parts) in (1, 2):
        low = _long_argument(name, parts[0])
        high = _long_argument(name, parts[-1])
        return lambda value: low <= len(value) <= high
    if name == "range" and len(parts) == 2:
        low, high = _long_argument(name, parts[0]), _long_argument(name, parts[1])
        check_long = _integer_in(_INT64)
        return lambda value: check_long(value) and low <= int(value) <= high
    raise _unresolved(text)


def _unresolved(text: str) -> RouteTemplateError:
    return RouteTemplateError(
        f"The constraint reference '{text}' could not be resolved to a type. Register the "
        "constraint type with 'Microsoft.AspNetCore.Routing.RouteOptions.ConstraintMap'."
    )


# -- parsing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    name: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constraints: tuple[Constraint, ...] = ()

    def accepts(self, value: str) -> bool:
        return all(check(value) for check in self.constraints)


Part = str | Parameter
"""A literal run or a parameter within one path segment."""


ComplexAttempt = tuple[re.Pattern[str], tuple[str, ...]]
"""A compiled pattern for a complex segment and the parameter names of its groups."""


@dataclass(frozen=True)
class RouteTemplate:
    text: str
    segments: tuple[tuple[Part, ...], ...]
    parameters: tuple[Parameter, ...] = field(default=())
    complex_segments: tuple[tuple[ComplexAttempt, ...], ...] = field(default=())
    """Per segment, the patterns of a complex one (empty for the others), compiled once."""

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for a request path (decoded), or ``None`` when it does not match."""
        return _match(self, path)


def parse_template(text: str) -> RouteTemplate:
    """``RoutePatternParser.Parse``: raise ``RouteTemplateError`` for what it rejects."""
    template = text
    if template.startswith("~/"):
        template = template[2:]
    elif template.startswith("/"):
        template = template[1:]
    if template.startswith("~"):
        raise RouteTemplateError(
            f"The route template '{text}' cannot start with '~' or '/', or contain '?'."
        )
    if "?" in _outside_braces(template):
        raise RouteTemplateError(
            f"The literal section '{text}' is invalid. Literal sections cannot contain the '?' "
            "character."
        )
    if template.endswith("/"):
        template = template[:-1]
    raw_segments = _split_segments(template) if template else []
    segments: list[tuple[Part, ...]] = []
    complex_segments: list[tuple[ComplexAttempt, ...]] = []
    seen: set[str] = set()
    parameters: list[Parameter] = []
    for index, raw in enumerate(raw_segments):
        if raw == "":
            raise RouteTemplateError(
                "The route template separator character '/' cannot appear consecutively. It "
                "must be separated by either a parameter or a literal value."
            )
        parts = _parse_segment(raw)
        for part in parts:
            if isinstance(part, Parameter):
                key = part.name.casefold()
                if key in seen:
                    raise RouteTemplateError(
                        f"The route parameter name '{part.name}' appears more than one time in "
                        "the route template."
                    )
                seen.add(key)
                parameters.append(part)
                if part.catch_all and index != len(raw_segments) - 1:
                    raise RouteTemplateError(
                        "A catch-all parameter can only appear as the last segment of the route "
                        "template."
                    )
        if len(parts) > 1:
            _validate_complex(raw, parts)
        segments.append(tuple(parts))
        complex_segments.append(_complex_attempts(tuple(parts)) if len(parts) > 1 else ())
    return RouteTemplate(text, tuple(segments), tuple(parameters), tuple(complex_segments))


def _outside_braces(template: str) -> str:
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(template):
        char = template[i]
        if char == "{" and template[i : i + 2] != "{{" and depth == 0:
            depth = 1
        elif depth == 0:
            out.append(char)
        elif char == "}" and template[i : i + 2] != "}}":
            depth = 0
        elif char == "}":
            i += 1
        i += 1
    return "".join(out)


def _split_segments(template: str) -> list[str]:
    """Split on ``/`` outside parameters (a regex constraint may contain one)."""
    segments: list[str] = []
    current: list[str] = []
    inside = False
    i = 0
    while i < len(template):
        char = template[i]
        if not inside and template.startswith("{{", i):
            current.append("{{")
            i += 2
            continue
        if not inside and char == "{":
            inside = True
        elif inside and template.startswith("}}", i):
            current.append("}}")
            i += 2
            continue
        elif inside and char == "}":
            inside = False
        elif not inside and char == "/":
            segments.append("".join(current))
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if inside:
        raise RouteTemplateError(
            "There is an incomplete parameter in the route template. Check that each '{' "
            "character has a matching '}' character."
        )
    segments.append("".join(current))
    return segments


def _parse_segment(raw: str) -> list[Part]:
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while i < len(raw):
        if raw.startswith("{{", i):
            literal.append("{")
            i += 2
        elif raw.startswith("}}", i):
            literal.append("}")
            i += 2
        elif raw[i] == "{":
            end = _parameter_end(raw, i)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_parse_parameter(raw[i + 1 : end]))
            i = end + 1
        elif raw[i] == "}":
            raise RouteTemplateError(
                "There is an incomplete parameter in the route template. Check that each '{' "
                "character has a matching '}' character."
            )
        else:
            literal.append(raw[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _parameter_end(raw: str, start: int) -> int:
    i = start + 1
    while i < len(raw):
        if raw.startswith("}}", i):
            i += 2
            continue
        if raw[i] == "}":
            return i
        i += 1
    raise RouteTemplateError(
        "There is an incomplete parameter in the route template. Check that each '{' character "
        "has a matching '}' character."
    )


def _parse_parameter(body: str) -> Parameter:
    """``RouteParameterParser.ParseRouteParameter``."""
    text = body.replace("}}", "}").replace("{{", "{")
    catch_all = False
    if text.startswith("**"):
        catch_all, text = True, text[2:]
    elif text.startswith("*"):
        catch_all, text = True, text[1:]
    name_end = len(text)
    for index, char in enumerate(text):
        if char in ":=" or (char == "?" and index == len(text) - 1):
            name_end = index
            break
    name = text[:name_end]
    rest = text[name_end:]
    constraints: list[str] = []
    while rest.startswith(":"):
        rest = rest[1:]
        end = _constraint_end(rest)
        constraints.append(rest[:end])
        rest = rest[end:]
    default: str | None = None
    optional = False
    if rest.startswith("="):
        default = rest[1:]
        if default.endswith("?"):
            raise RouteTemplateError("An optional parameter cannot have default value.")
    elif rest == "?":
        optional = True
    elif rest:
        raise RouteTemplateError(f"The route parameter '{body}' has an invalid syntax.")
    if not name or any(c in name for c in "/{}=?*:"):
        raise RouteTemplateError(
            f"The route parameter name '{name}' is invalid. Route parameter names must be "
            "non-empty and cannot contain these characters: '{', '}', '/'. The '?' character "
            "marks a parameter as optional, and can occur only at the end of the parameter. The "
            "'*' character marks a parameter as catch-all, and can occur only at the start of "
            "the parameter."
        )
    if catch_all and optional:
        raise RouteTemplateError("A catch-all parameter cannot be marked optional.")
    return Parameter(
        name=name,
        optional=optional,
        catch_all=catch_all,
        default=default,
        constraints=tuple(_resolve_constraint(c) for c in constraints),
    )


def _constraint_end(rest: str) -> int:
    """Where one inline constraint ends: a ``:``/``=``/final ``?`` outside its parentheses."""
    depth = 0
    for index, char in enumerate(rest):
        if char == "(":
            depth += 1
        elif char == ")" and depth:
            depth -= 1
        elif depth == 0 and (char in ":=" or (char == "?" and index == len(rest) - 1)):
            return index
    return len(rest)


def _validate_complex(raw: str, parts: list[Part]) -> None:
    for previous, current in itertools.pairwise(parts):
        if isinstance(previous, Parameter) and isinstance(current, Parameter):
            raise RouteTemplateError(
                "A path segment cannot contain two consecutive parameters. They must be "
                "separated by a '/' or by a literal string."
            )
    for index, part in enumerate(parts):
        if not isinstance(part, Parameter):
            continue
        if part.catch_all:
            raise RouteTemplateError(
                "A path segment that contains more than one section, such as a literal section "
                "or a parameter, cannot contain a catch-all parameter."
            )
        if part.optional:
            if index != len(parts) - 1:
                raise RouteTemplateError(
                    f"An optional parameter must be at the end of the segment. In the segment "
                    f"'{raw}', optional parameter '{part.name}' is followed by '{parts[-1]}'."
                )
            before = parts[index - 1]
            if isinstance(before, str) and not before.endswith("."):
                raise RouteTemplateError(
                    f"In the segment '{raw}', the optional parameter '{part.name}' is preceded "
                    f"by an invalid segment '{before}'. Only a period (.) can precede an "
                    "optional parameter."
                )


# -- matching ----------------------------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """Path segments of a decoded request path; a trailing slash is ignored, as in routing."""
    trimmed = path[1:] if path.startswith("/") else path
    if trimmed.endswith("/"):
        trimmed = trimmed[:-1]
    return trimmed.split("/") if trimmed else []


def _match(template: RouteTemplate, path: str) -> dict[str, str] | None:
    """``TemplateMatcher.TryMatch`` followed by the route's constraints."""
    request = split_path(path)
    values: dict[str, str] = {}
    consumed = 0
    for index, parts in enumerate(template.segments):
        only = parts[0] if len(parts) == 1 and isinstance(parts[0], Parameter) else None
        if only is not None and only.catch_all:
            rest = "/".join(request[index:])
            if rest:
                values[only.name] = rest
            elif only.default is not None:
                values[only.name] = only.default
            consumed = len(request)
            break
        if index >= len(request):
            # Missing trailing segments must be optional or defaulted parameters.
            if only is None or not (only.optional or only.default is not None):
                return None
            if only.default is not None:
                values[only.name] = only.default
            continue
        segment = request[index]
        consumed = index + 1
        if only is not None:
            if segment == "":
                return None
            values[only.name] = segment
        elif len(parts) == 1:
            if segment.casefold() != str(parts[0]).casefold():
                return None
        else:
            matched = _match_complex(template.complex_segments[index], segment)
            if matched is None:
                return None
            values.update(matched)
    if consumed < len(request):
        return None
    for parameter in template.parameters:
        value = values.get(parameter.name)
        if value is not None and not parameter.accepts(value):
            return None
    return values


def _complex_attempts(parts: tuple[Part, ...]) -> tuple[ComplexAttempt, ...]:
    """The patterns for a segment mixing literals and parameters (``{name}.{ext}``).

    ``RoutePatternMatcher.MatchComplexSegment`` works right to left, so earlier parameters get
    the longest values (greedy groups here); a final optional parameter is tried present first,
    then absent together with the period before it.
    """
    candidates = [parts]
    last = parts[-1]
    if isinstance(last, Parameter) and last.optional:
        before = str(parts[-2])[:-1]  # parsing guarantees a literal ending with "."
        candidates.append(parts[:-2] + ((before,) if before else ()))
    attempts: list[ComplexAttempt] = []
    for candidate in candidates:
        names = tuple(part.name for part in candidate if isinstance(part, Parameter))
        pattern = "".join(
            "(.+)" if isinstance(part, Parameter) else re.escape(part) for part in candidate
        )
        attempts.append((re.compile(pattern, re.I | re.S), names))
    return tuple(attempts)


def _match_complex(attempts: tuple[ComplexAttempt, ...], segment: str) -> dict[str, str] | None:
    """Route values from the first of a complex segment's patterns that matches it whole."""
    for pattern, names in attempts:
        found = pattern.fullmatch(segment)
        if found is not None:
            return dict(zip(names, found.groups(), strict=True))
    return None


# -- the route table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One function route: the full template (route prefix included) and its methods."""

    function_name: str
    template: RouteTemplate
    methods: frozenset[str] | None
    """Upper-case methods, or ``None`` for any method (no ``methods`` in the trigger)."""
    auth_level: str


def build_template(route_prefix: str, route: str) -> RouteTemplate:
    """``WebJobsRouteBuilder.BuildRouteTemplate``: ``prefix + '/' + route`` (no trimming)."""
    return parse_template(f"{route_prefix}/{route}" if route_prefix else route)


def find_route(
    routes: Iterable[Route], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    """The first route whose template and method constraint match (``RouteCollection``)."""
    for route in routes:
        if route.methods is not None and method.upper() not in route.methods:
            continue
        values = route.template.match(path)
        if values is not None:
            return route, values
    return None


def routes_conflict(
    route: str,
    methods: frozenset[str] | None,
    other_route: str,
    other_methods: frozenset[str] | None,
) -> bool:
    """``ScriptHost.HttpRoutesConflict``: same route text (ignoring case and outer slashes)
    and overlapping methods (no methods means all)."""
    if route.strip("/").casefold() != other_route.strip("/").casefold():
        return False
    if not methods or not other_methods:
        return True
    return bool(methods & other_methods)

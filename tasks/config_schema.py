"""Strict configuration: an unknown key is an error, and every problem gets its own line.

Why: a typo in `dataset.toml` (`[publising]`, `cases = "lower"`) used to be ignored, so a
shop's rules silently vanished from the lists. Every model of the file derives from
`StrictModel` (unknown keys refused), and `config_problems` turns pydantic's errors into
one line per problem in the file's own words: the TOML section and key, the rule, and a
did-you-mean when a known name is close.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError


class StrictModel(BaseModel):
    """A configuration model that refuses keys it does not know."""

    model_config = ConfigDict(extra="forbid")


def unwrap(annotation: Any) -> Any:
    """The model or container inside Optional[...] / Annotated[...]."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def _union_member(annotation: Any, tag: str) -> Any:
    """The member of a discriminated union whose `kind` is `tag`."""
    for member in typing.get_args(unwrap(annotation)):
        if isinstance(member, type) and issubclass(member, BaseModel):
            kind = member.model_fields.get("kind")
            if kind is not None and tag in typing.get_args(kind.annotation):
                return member
    return None


def _walk(model: type[BaseModel], loc: tuple) -> tuple[list[str], Any]:
    """Follow a pydantic error location through the models: the parts as the TOML file
    names them (union tags such as 'categorical' left out) and the type found there."""
    current: Any = model
    parts: list[str] = []
    for part in loc:
        current = unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field is not None else None
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        elif (member := _union_member(current, str(part))) is not None:
            current = member
            continue  # a tag pydantic adds, not a key of the file
        else:
            current = None
        parts.append(str(part))
    return parts, unwrap(current)


def known_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed where `loc` points (a field path as pydantic reports it)."""
    found = _walk(model, loc)[1]
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        return []
    return [name for name, f in found.model_fields.items() if not f.exclude]


def _section(parts: list[str]) -> str:
    """A location as TOML shows it: [user_features.skin_type] case."""
    if len(parts) <= 1:
        return f"[{parts[0]}]" if parts else "the file"
    return f"[{'.'.join(parts[:-1])}] {parts[-1]}"


def suggest(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(str(word), candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def config_problems(error: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per problem: where in the file, what is wrong, what was meant."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        kind = item["type"]
        parts = _walk(model, loc)[0]
        if kind == "extra_forbidden":
            key = loc[-1]
            allowed = known_keys(model, loc[:-1])
            where = "section" if len(loc) == 1 else "key"
            problems.append(
                f"{_section(parts)}: unknown {where}{suggest(key, allowed)}; "
                f"known: {', '.join(allowed)}"
            )
        elif kind == "union_tag_invalid":
            tag = item["ctx"]["tag"]
            expected = [t.strip(" '") for t in str(item["ctx"]["expected_tags"]).split(",")]
            problems.append(
                f"{_section(parts + ['kind'])} = {tag!r}: not a kind"
                f"{suggest(tag, expected)}; kinds: {', '.join(expected)}"
            )
        elif kind == "literal_error" and loc and loc[-1] == "[key]":
            key = loc[-2]
            expected = [t.strip(" '") for t in str(item["ctx"]["expected"]).split(" or ")]
            expected = [e for part in expected for e in part.split(",") if e.strip(" '")]
            expected = [e.strip(" '") for e in expected]
            problems.append(
                f"{_section(parts[:-1])}: unknown name{suggest(key, expected)}; "
                f"allowed: {', '.join(expected)}"
            )
        else:
            value = item.get("input")
            shown = f" = {value!r}" if not isinstance(value, dict | list) else ""
            problems.append(f"{_section(parts)}{shown}: {item['msg']}")
    return problems

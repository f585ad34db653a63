"""Command lines for flows, generated from their pydantic parameter models.

Every field becomes an option with the field's own name (`--top_n`, or `--top-n`);
fields of nested models are reached with a dot (`--model.loss warp`, `--gate.min_lift 0.1`).
Values are validated by the same model the Prefect UI uses, so both refuse the same input.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from tasks.errors import STORAGE_ERRNOS, RecsError, quiet_user_errors, storage_error

quiet_user_errors()  # every flow module imports this one

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def _leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any, Any]]:
    leaves = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            leaves += _leaf_fields(annotation, f"{prefix}{name}.")
        else:
            leaves.append((f"{prefix}{name}", annotation, field))
    return leaves


def _converter(annotation: Any) -> tuple[Any, list | None]:
    """argparse type and choices for an annotation (Optional[...] unwrapped)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _converter(inner[0])
    if origin is Literal:
        return str, list(typing.get_args(annotation))
    if annotation in (int, float, str, Path):
        return annotation, None
    return str, None


REQUIRED = "required"


def _default_of(model: type[BaseModel], dotted: str) -> Any:
    """The default of a (nested) field as the model's default instance holds it, or
    REQUIRED for a field without one (the model cannot be built without arguments)."""
    first, *rest = dotted.split(".")
    field = model.model_fields[first]
    if field.is_required():
        return REQUIRED
    value = field.get_default(call_default_factory=True)
    for part in rest:
        value = getattr(value, part)
    return value


def build_parser(model: type[BaseModel], prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for dotted, annotation, field in _leaf_fields(model):
        default = _default_of(model, dotted)
        help_text = f"{field.description or ''} (default: {default})".strip().replace("%", "%%")
        names = [f"--{dotted}"]
        if "_" in dotted:
            names.append(f"--{dotted.replace('_', '-')}")
        if annotation is bool:
            parser.add_argument(
                *names, dest=dotted, action=argparse.BooleanOptionalAction, help=help_text
            )
            continue
        kind, choices = _converter(annotation)
        parser.add_argument(
            *names,
            dest=dotted,
            type=kind,
            choices=choices,
            help=help_text,
            metavar=None if choices else kind.__name__.upper(),
        )
    return parser


def parse_params(model: type[M], argv: list[str] | None, prog: str, description: str) -> M:
    """Parse argv into a validated model; on bad input print the field and rule, exit 2."""
    parser = build_parser(model, prog, description)
    namespace = vars(parser.parse_args(argv))
    nested: dict[str, Any] = {}
    for dotted, value in namespace.items():
        if value is None:
            continue
        target = nested
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    try:
        return model.model_validate(nested)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
        )
        parser.error(problems)
        raise  # unreachable: parser.error exits


def run_cli(run: Callable[[], T], render: Callable[[T], str]) -> int:
    """Run a flow from a command line: its rendered result on stdout and 0, or, for an
    error the user can cause (`RecsError`), its message alone on stderr and its exit code.
    A write the machine refuses (read-only, disk full) is reported as a StorageError.
    Anything else is a bug and keeps its traceback."""
    try:
        result = run()
    except RecsError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        if error.errno not in STORAGE_ERRNOS:
            raise
        failure = storage_error(error, "write under the data root")
        print(f"error: {failure}", file=sys.stderr)
        return failure.exit_code
    print(render(result))
    return 0

"""Command-line flags from frozen dataclasses: the one way the ``jaxnn`` command declares an option.

Each command's options are a frozen dataclass (:mod:`jaxnn.app.options`,
:class:`jaxnn.train.FitConfig`) whose fields are declared with :func:`jaxnn.train.config.setting`,
and :func:`add_flags` turns every field into a flag:

- ``batch_size`` -> ``--batch-size``; the help text, the choices and the value's placeholder come
  from the field's declaration, and ``--help`` shows the default and the choices after the text;
- ``bool`` -> ``--x`` and ``--no-x``; ``tuple[str, ...]`` -> ``--x KEY=VALUE``, repeatable;
  ``int``, ``float``, ``str`` and ``T | None`` -> ``--x VALUE``, converted to the type;
- a field without a default is a required flag.

A flag that several commands take is declared once, in one class, and the others take that
declaration with :func:`reuse`: the same type, default, choices and help, where the default or the
help may be changed for the command.

The parsed values go back into the dataclass with :func:`options_from`, whose ``__post_init__``
checks them. ``jaxnn train`` merges its settings from several places (defaults < recipe < saved
config < flags), so it adds its flags with ``defaults=False``: a flag not given is then absent
from the parsed namespace, and what is there is exactly what the user typed.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import types
import typing
from typing import Any

from jaxnn.errors import UserError
from jaxnn.train.config import REQUIRED, setting

__all__ = ["add_flags", "options_from", "parse_pairs", "reuse", "flag_name"]

_SAME = object()  # reuse(): keep the declaration's default


def flag_name(field: str) -> str:
    """The flag of a field: ``batch_size`` -> ``--batch-size``."""
    return "--" + field.replace("_", "-")


def reuse(cls, name: str, *, default=_SAME, help: str | None = None) -> Any:
    """A new field declared as field ``name`` of dataclass ``cls``, for a flag shared by commands.

    Args:
      cls: the dataclass that declares the flag.
      name: the field's name.
      default: another default for this command (:data:`jaxnn.train.config.REQUIRED`: none).
      help: other help text for this command.

    Returns:
      A fresh field with the declaration's default, help, choices and placeholder, save those
      changed (a field belongs to one class, so each command gets its own copy).
    """
    declared = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = declared.metadata
    return setting(
        declared.default if default is _SAME else default,
        meta.get("help", "") if help is None else help,
        choices=meta.get("choices", ()),
        metavar=meta.get("metavar"),
    )


def add_flags(parser: argparse.ArgumentParser, cls, *, defaults: bool = True) -> None:
    """Add a flag to ``parser`` for each field of the dataclass ``cls``.

    Args:
      parser: the command's parser.
      cls: a dataclass whose fields are declared with :func:`jaxnn.train.config.setting`.
      defaults: put each field's default in the parsed namespace; with False, a flag that is
        not given is absent from it (so a caller can tell a flag given from a default).
    """
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        parser.add_argument(
            flag_name(field.name), **_argument(field, _value_type(hints[field.name]))
        )
    if defaults:
        parser.set_defaults(
            **{
                f.name: _parsed(f.default)
                for f in dataclasses.fields(cls)
                if f.default is not REQUIRED
            }
        )


def options_from(cls, args: argparse.Namespace):
    """The ``cls`` of parsed ``args`` (a repeated flag's list becomes a tuple); a field absent
    from them keeps its default, and ``cls``'s ``__post_init__`` checks the values."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _value_type(kind):
    """The type of a flag's value: ``T`` for ``T | None``."""
    if isinstance(kind, types.UnionType):
        (kind,) = (k for k in typing.get_args(kind) if k is not type(None))
    return kind


def _argument(field: dataclasses.Field, kind) -> dict:
    """``add_argument``'s keywords for a field whose value has type ``kind``."""
    meta = field.metadata
    common = {
        "default": argparse.SUPPRESS,
        "help": _help(field),
        "required": field.default is REQUIRED,
    }
    if kind is bool:
        return {**common, "action": argparse.BooleanOptionalAction}
    if typing.get_origin(kind) is tuple:
        return {**common, "action": "append", "metavar": meta.get("metavar") or "KEY=VALUE"}
    metavar = meta.get("metavar") or field.name.upper()
    return {**common, "type": kind, "choices": meta.get("choices") or None, "metavar": metavar}


def _help(field: dataclasses.Field) -> str:
    """The field's help text, then its default and choices: ``text (default: 20; one of a, b)``."""
    notes = []
    if field.default is REQUIRED:
        notes.append("required")
    elif field.default not in (None, "", ()):
        spaced = isinstance(field.default, str) and field.default != field.default.strip()
        notes.append(f"default: {field.default!r}" if spaced else f"default: {field.default}")
    if field.metadata.get("choices"):
        notes.append(f"one of {', '.join(field.metadata['choices'])}")
    text = field.metadata.get("help", "") + (f" ({'; '.join(notes)})" if notes else "")
    return text.strip().replace("%", "%%")


def _parsed(default):
    """A default as the parser holds it: a list for a repeatable flag (argparse appends to it)."""
    return list(default) if isinstance(default, tuple) else default


def _parse_value(raw: str):
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def parse_pairs(pairs, what: str) -> dict:
    """``KEY=VALUE`` strings as a dict (values as Python literals, ``true``/``false`` as
    booleans, anything else as the string); ``what`` (the flag) starts the error message."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what}: expected KEY=VALUE, got {pair!r}")
        out[key] = _parse_value(raw)
    return out

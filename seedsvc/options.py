"""Declaring settings: each field of a settings group states its flag, variable, parser and help once.

A settings group is a small frozen dataclass whose fields are made with :func:`setting`; the field's
default is the setting's default. :func:`options_of` reads a tree of groups back as :class:`Option`
records, which drive the loader, the CLI, the Python API's keyword overrides and the docs table, so
no setting can exist in one of them and not the others.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_METADATA_KEY = "seedsvc.option"


@dataclass(frozen=True, slots=True)
class _Declaration:
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str
    also_env: tuple[str, ...]


def setting(
    default: T,
    *,
    flag: str,
    env: str,
    parse: Callable[[str], T],
    help: str,
    metavar: str = "VALUE",
    also_env: tuple[str, ...] = (),
) -> T:
    """A dataclass field that is also a command-line flag and an environment variable.

    ``parse`` turns the raw text into the value or raises ValueError with a short reason.
    ``also_env`` are older names of the variable (``CASSANDRA_DC``), read in order when ``env`` is unset.
    """
    declaration = _Declaration(flag=flag, env=env, parse=parse, help=help, metavar=metavar, also_env=also_env)
    return dataclasses.field(default=default, metadata={_METADATA_KEY: declaration})


@dataclass(frozen=True, slots=True)
class Option:
    """One setting as the loader, the CLI and the docs see it."""

    group: str
    """Attribute of the settings tree that holds the group (``kubernetes``)."""
    field: str
    """Attribute of the group (``request_timeout``)."""
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str
    default: Any
    also_env: tuple[str, ...] = ()

    @property
    def envs(self) -> tuple[str, ...]:
        """Every variable that sets this option, the preferred one first."""
        return (self.env, *self.also_env)

    @property
    def name(self) -> str:
        """The key of flag values and of the Python API's overrides: the flag in snake case."""
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def default_text(self) -> str:
        """The default as a person would type it (``none`` when unset)."""
        default = self.default
        if default is None or default == ():
            return "none"
        if isinstance(default, tuple):
            return ",".join(str(item) for item in default)
        if isinstance(default, float):
            return f"{default:g}"
        return str(default)


def markdown_tables(tree: type[Any]) -> str:
    """One Markdown table per group of ``tree``, headed by the first line of the group's docstring."""
    group_types = typing.get_type_hints(tree)
    options = options_of(tree)
    sections = []
    for group in dataclasses.fields(tree):
        summary = (group_types[group.name].__doc__ or "").strip().splitlines()[0]
        rows = [f"| `{o.flag}` | {' or '.join(f'`{e}`' for e in o.envs)} | `{o.default_text}` | {o.help} |"
                for o in options if o.group == group.name]
        sections.append("\n".join([
            f"### `{group.name}`: {summary}", "", "| flag | environment | default | meaning |",
            "|---|---|---|---|", *rows,
        ]))
    return "\n\n".join(sections) + "\n"


def options_of(tree: type[Any]) -> tuple[Option, ...]:
    """Every setting of a dataclass whose fields are settings groups, in declaration order."""
    group_types = typing.get_type_hints(tree)
    options: list[Option] = []
    for group in dataclasses.fields(tree):
        for field in dataclasses.fields(group_types[group.name]):
            declaration = field.metadata.get(_METADATA_KEY)
            if declaration is None:
                raise TypeError(f"{tree.__name__}.{group.name}.{field.name} is not declared with setting()")
            options.append(Option(
                group=group.name,
                field=field.name,
                flag=declaration.flag,
                env=declaration.env,
                parse=declaration.parse,
                help=declaration.help,
                metavar=declaration.metavar,
                default=field.default,
                also_env=declaration.also_env,
            ))
    return tuple(options)

"""Which files of a build context a ``.dockerignore`` keeps, with Docker's matching rules.

The cache key must hash exactly the files the engine sends, so this follows the documented semantics
(https://docs.docker.com/build/concepts/context/#dockerignore-files): patterns are cleaned paths
relative to the context root, ``*`` and ``?`` stay within one path segment, ``**`` spans any number of
segments, a ``!`` line re-includes, the last matching line wins, and a pattern that matches a directory
matches everything below it.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pattern:
    """One non-comment line: its cleaned text, whether it re-includes, and the compiled matcher."""

    text: str
    exception: bool
    regex: re.Pattern[str]

    @property
    def segments(self) -> int:
        return self.text.count("/") + 1


def _translate(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" also matches no directory at all
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def parse(text: str) -> tuple[Pattern, ...]:
    """The patterns of a ``.dockerignore`` file's text, in order."""
    patterns: list[Pattern] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        if exception:
            line = line[1:].strip()
        cleaned = posixpath.normpath(line).lstrip("/")
        if cleaned in ("", "."):
            continue
        patterns.append(Pattern(cleaned, exception, _translate(cleaned)))
    return tuple(patterns)


def _matches(pattern: Pattern, path: str) -> bool:
    if pattern.regex.match(path):
        return True
    # A pattern naming a directory excludes what lies below it: try each of the path's parents.
    parts = path.split("/")
    return any(pattern.regex.match("/".join(parts[:n])) for n in range(1, len(parts)))


def excluded(patterns: Sequence[Pattern], path: str) -> bool:
    """Whether ``path`` (relative, ``/``-separated) is left out of the context: the last match wins."""
    verdict = False
    for pattern in patterns:
        if _matches(pattern, path):
            verdict = not pattern.exception
    return verdict


def _may_reinclude_below(patterns: Sequence[Pattern], directory: str) -> bool:
    """Whether some ``!`` line could keep a file under an excluded ``directory`` (so the walk descends)."""
    depth = directory.count("/") + 1
    for pattern in patterns:
        if not pattern.exception:
            continue
        if "**" in pattern.text:
            return True
        leading = "/".join(pattern.text.split("/")[:depth])
        if pattern.segments > depth and _translate(leading).match(directory):
            return True
    return False


def kept_files(root: Path, patterns: Sequence[Pattern]) -> Iterator[str]:
    """Relative paths of the regular files and symlinks under ``root`` that the context keeps, sorted."""
    found: list[str] = []
    for current, dirs, files in os.walk(root):
        base = os.path.relpath(current, root)
        prefix = "" if base == "." else base.replace(os.sep, "/") + "/"
        dirs[:] = sorted(
            name
            for name in dirs
            if not excluded(patterns, prefix + name) or _may_reinclude_below(patterns, prefix + name)
        )
        found.extend(prefix + name for name in files if not excluded(patterns, prefix + name))
    return iter(sorted(found))

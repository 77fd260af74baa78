"""Reading a node's growing log files: incrementally while waiting, and the tail for error messages."""

from __future__ import annotations

from pathlib import Path


def tail(path: Path, max_bytes: int = 6000) -> str:
    """The end of a log file, for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - max_bytes))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return f"(no {path.name})"


class LogFollower:
    """Reads a growing log file incrementally so polling stays cheap however long the log gets."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self._path = path
        self._offset = offset
        self._partial = b""

    def new_lines(self) -> list[str]:
        try:
            with self._path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        return [line.decode("utf-8", "replace") for line in complete]

"""Logging set-up for the command line: human text, or one JSON object per line for log pipelines."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """``{"time", "level", "logger", "message"[, "exception"]}``, one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def setup_logging(*, log_format: str, level: str) -> None:
    """Everything to stderr (stdout carries command output), replacing any earlier set-up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log would log every probe; the HTTP middleware logs requests at debug instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


# --- bounded-rate logging of what callers can provoke -----------------------------------------------

REPORT_INTERVAL = 10.0
"""Seconds between two log lines of one kind that a caller can provoke at will (malformed requests,
accept() failures): one line says it happens and how often; a flood of them cannot fill the disk or
spend the CPU on formatting tracebacks."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(slots=True)
class Throttle:
    """At most one report per ``interval`` seconds for each kind; counts the ones held back."""

    interval: float = REPORT_INTERVAL
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def admit(self, kind: str) -> int | None:
        """None to stay quiet; else how many reports of ``kind`` were held back since the last one."""
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)


def held_back(count: int) -> str:
    return f" ({count} more since the last report)" if count else ""


def one_line(text: str, limit: int = 200) -> str:
    """Peer-supplied text (a parser's complaint quoting the request) as one bounded, printable line."""
    text = _CONTROL.sub(" ", " ".join(text.split()))
    return text[:limit] + "..." if len(text) > limit else text


class MalformedRequests(logging.Filter):
    """aiohttp logs each request it cannot parse as an ERROR with a traceback; make that one WARNING
    line at a bounded rate (``on_malformed`` still counts every one), and bound the rate of anything
    else its protocol logs with a traceback."""

    def __init__(self, throttle: Throttle, on_malformed: Callable[[], None]) -> None:
        super().__init__()
        self._throttle = throttle
        self._on_malformed = on_malformed

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            if exc is None:
                return True
            held = self._throttle.admit("protocol-error")
            if held is None:
                return False
            record.msg = f"{record.msg}{held_back(held)}"
            return True
        self._on_malformed()
        held = self._throttle.admit("malformed")
        if held is None:
            return False
        remote = record.args[0] if isinstance(record.args, tuple) and len(record.args) == 1 else "?"
        reason = getattr(exc, "message", "") or str(exc)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.msg = "malformed request from %s answered 400: %s%s"
        record.args = (remote, one_line(str(reason)), held_back(held))
        record.exc_info, record.exc_text = None, None
        return True


def loop_exception_handler(
    throttle: Throttle, on_accept_error: Callable[[], None]
) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event-loop exception handler: a failing ``accept()`` (EMFILE under a connection flood) is
    one WARNING line at a bounded rate instead of a traceback per attempt; anything else goes to the
    default handler, also at a bounded rate."""
    log = logging.getLogger("seedsvc.http")

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            on_accept_error()
            held = throttle.admit("accept")
            if held is not None:
                exc = context.get("exception")
                detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                log.warning("cannot accept connections: %s; asyncio retries every second%s", detail,
                            held_back(held))
            return
        held = throttle.admit("loop")
        if held is not None:
            loop.default_exception_handler(context)

    return handle

"""tests/leak_check.py names the test that left a transport open and fails the run, even when the
garbage collector would only have found it later (a reference cycle keeps it from being freed at once)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

HEADER = "import asyncio\n"

LEAKING = '''
async def test_leaves_a_connection_open() -> None:
    server = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await asyncio.get_running_loop().create_connection(asyncio.Protocol, "127.0.0.1", port)
    cycle: dict[str, object] = {"transport": transport}
    cycle["self"] = cycle
    server.close()
'''

CLEAN = '''
async def test_closes_its_connection() -> None:
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()

def test_after() -> None:
    assert True
'''


def run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *tests: str) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_probe=HEADER + "".join(tests))
    return pytester.runpytest_subprocess("-p", "tests.leak_check", "-o", "asyncio_mode=auto")


def test_a_leaked_connection_fails_the_run_and_names_its_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run(pytester, monkeypatch, LEAKING, CLEAN)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*resources left by tests*", "test_probe.py::test_leaves_a_connection_open: *unclosed*"]
    )
    assert "test_closes_its_connection:" not in result.stdout.str()
    assert "test_after:" not in result.stdout.str()


def test_a_run_without_leaks_passes(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(pytester, monkeypatch, CLEAN)
    assert result.ret == pytest.ExitCode.OK
    assert "resources left by tests" not in result.stdout.str()

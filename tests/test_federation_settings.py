"""The several-datacenter settings (DESIGN.md section 7): defaults, the CASSANDRA_DC fallback, and one
line naming the flag or variable for every invalid or inconsistent value (exit 2 from the CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedsvc.settings import ConfigError, Settings, load
from seedsvc_devcluster.sidecar_process import run


def loaded(environ: dict[str, str], flags: dict[str, str | None] | None = None) -> Settings:
    return load(flags or {}, environ, serviceaccount_namespace=lambda _: None, resolv_conf=Path("/nonexistent"))


def test_unset_means_one_datacenter_and_the_defaults_are_the_briefs() -> None:
    group = loaded({}).federation
    assert (group.datacenter, group.peers, group.peer_count, group.peer_expiry) == (None, (), 2, 86400)
    assert group.bootstrap_datacenter is None and group.peer_ca_file is None
    assert group.bootstrap_here  # without peers a DC is its own bootstrap DC


def test_datacenter_falls_back_to_cassandra_dc_and_the_flag_wins() -> None:
    assert loaded({"CASSANDRA_DC": "DC1"}).federation.datacenter == "DC1"
    assert loaded({"CASSANDRA_DC": "DC1", "SEEDSVC_DATACENTER": "eu-west"}).federation.datacenter == "eu-west"
    assert loaded({"SEEDSVC_DATACENTER": "eu-west"}, {"datacenter": "us_east.1"}).federation.datacenter == "us_east.1"


def test_peers_parse_in_order_and_the_bootstrap_datacenter_decides_who_may_seed_itself() -> None:
    environ = {"SEEDSVC_DATACENTER": "dc2", "SEEDSVC_PEERS": " dc3=https://seeds.dc3.example:8443/ , dc1=http://[fd00::1]:8080",
               "SEEDSVC_BOOTSTRAP_DATACENTER": "dc1"}
    group = loaded(environ).federation
    assert group.peers == (("dc3", "https://seeds.dc3.example:8443"), ("dc1", "http://[fd00::1]:8080"))
    assert not group.bootstrap_here
    assert loaded(environ | {"SEEDSVC_BOOTSTRAP_DATACENTER": "dc2"}).federation.bootstrap_here


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SEEDSVC_DATACENTER": "dc 1"}, "invalid SEEDSVC_DATACENTER='dc 1'"),
        ({"CASSANDRA_DC": "-dc"}, "invalid CASSANDRA_DC='-dc'"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2"}, "invalid SEEDSVC_PEERS='dc2': expected name=URL"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=ftp://x"}, "must start with http:// or https://"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=http://"}, "has no valid host"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=http://a:b@x"}, "must not carry credentials"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=http://x/?a=1"}, "must not have a query"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=http://x:99999"}, "invalid port"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=http://x,dc2=http://y"}, "peer 'dc2' given twice"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc1=http://x"}, "a peer is named like this datacenter"),
        ({"SEEDSVC_PEERS": "dc2=http://x"}, "invalid SEEDSVC_PEERS='dc2=http://x': needs SEEDSVC_DATACENTER"),
        ({"SEEDSVC_DATACENTER": "dc1", "SEEDSVC_PEERS": "dc2=http://x", "SEEDSVC_BOOTSTRAP_DATACENTER": "dc9"},
         "invalid SEEDSVC_BOOTSTRAP_DATACENTER='dc9': neither this datacenter nor a peer (dc1, dc2)"),
        ({"SEEDSVC_BOOTSTRAP_DATACENTER": "dc1"}, "neither this datacenter nor a peer (none configured)"),
        ({"SEEDSVC_PEER_COUNT": "0"}, "invalid SEEDSVC_PEER_COUNT='0'"),
        ({"SEEDSVC_PEER_EXPIRY": "-1"}, "invalid SEEDSVC_PEER_EXPIRY='-1'"),
        ({"SEEDSVC_PEER_CA_FILE": "/nonexistent/ca.crt"}, "invalid SEEDSVC_PEER_CA_FILE='/nonexistent/ca.crt'"),
    ],
)
def test_each_invalid_or_inconsistent_value_is_named(environ: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        loaded(environ)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_the_cli_exits_2_with_one_line_naming_the_flag() -> None:
    result = run("serve", "--datacenter", "dc1", "--peers", "dc1=http://127.0.0.1:1")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SEEDSVC_PEERS" in lines[0] and "dc1=http://127.0.0.1:1" in lines[0], lines

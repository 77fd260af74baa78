"""The relay settings group: its one flag, what it needs, and the one-line error for each bad value."""

from __future__ import annotations

import pytest

from seedsvc.settings import ConfigError, load
from tests.sidecar_fixtures import run

RELAY_ENV = {"SEEDSVC_SOURCE": "relay", "POD_IP": "10.0.0.5"}


def test_urls_are_kept_in_order_without_duplicates_or_a_trailing_slash() -> None:
    settings = load({}, {**RELAY_ENV, "SEEDSVC_RELAY_URLS": "http://relay-b:8080/, http://10.1.0.1:8080,http://relay-b:8080"})
    assert settings.relay.urls == ("http://relay-b:8080", "http://10.1.0.1:8080")


@pytest.mark.parametrize(("environ", "named"), [
    ({"SEEDSVC_SOURCE": "relay", "POD_IP": "10.0.0.5"}, "SEEDSVC_RELAY_URLS"),
    ({"SEEDSVC_SOURCE": "relay", "SEEDSVC_RELAY_URLS": "http://relay:8080"}, "POD_IP"),
    ({"SEEDSVC_RELAY_URLS": "http://relay:8080"}, "SEEDSVC_SOURCE=relay"),
    ({**RELAY_ENV, "SEEDSVC_RELAY_URLS": "ftp://relay"}, "SEEDSVC_RELAY_URLS='ftp://relay'"),
    ({**RELAY_ENV, "SEEDSVC_RELAY_URLS": "http://user:pw@relay"}, "SEEDSVC_RELAY_URLS="),
    ({**RELAY_ENV, "SEEDSVC_RELAY_URLS": ","}, "SEEDSVC_RELAY_URLS=','"),
])
def test_an_inconsistent_or_invalid_relay_setting_names_itself(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load({}, environ)


def test_the_cli_exits_2_with_one_line_for_a_bad_relay_url() -> None:
    done = run("serve", "--source", "relay", "--pod-ip", "10.0.0.5", "--relay-urls", "relay:8080")
    assert done.returncode == 2
    assert "--relay-urls" in done.stderr and "relay:8080" in done.stderr

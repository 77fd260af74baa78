"""Settings: flag over environment, defaults from the pod's files, one clear error per bad value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from seedsvc.options import Option
from seedsvc.settings import OPTIONS, ConfigError, Settings, cluster_domain_from_resolv_conf, load
from seedsvc.values import host_port


def no_namespace_file(_: Path) -> None:
    return None


def test_defaults_are_the_documented_ones() -> None:
    settings = load({}, {}, serviceaccount_namespace=no_namespace_file, resolv_conf=Path("/nonexistent"))
    assert settings == Settings()
    assert (settings.discovery.source, settings.discovery.service, settings.discovery.namespace,
            settings.selection.count) == (
        "kubernetes",
        "cassandra",
        "default",
        3,
    )
    assert settings.resolved_dns_name == "cassandra.default.svc.cluster.local"
    assert (
        settings.selection.count == 3
        and settings.selection.flap_grace == 30
        and settings.selection.restart_fallback_after == 120
    )


def test_flag_wins_over_environment_and_empty_variables_count_as_unset() -> None:
    env = {"CASSANDRA_SERVICE_NUM_SEEDS": "5", "CASSANDRA_SERVICE": "", "POD_IP": ""}
    settings = load({"count": "2"}, env, serviceaccount_namespace=no_namespace_file)
    assert settings.selection.count == 2
    assert settings.discovery.service == "cassandra"
    assert settings.identity.pod_ip is None


def test_namespace_comes_from_the_service_account_file(tmp_path: Path) -> None:
    (tmp_path / "namespace").write_text("db-prod\n")
    settings = load({}, {"SEEDSVC_SERVICEACCOUNT_DIR": str(tmp_path)})
    assert settings.discovery.namespace == "db-prod"
    assert load({"namespace": "other"}, {"SEEDSVC_SERVICEACCOUNT_DIR": str(tmp_path)}).discovery.namespace == "other"


def test_cluster_domain_comes_from_the_resolv_conf_search_list(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 10.96.0.10\nsearch db.svc.corp.example svc.corp.example corp.example\n")
    assert cluster_domain_from_resolv_conf(resolv) == "corp.example"
    settings = load({}, {}, serviceaccount_namespace=no_namespace_file, resolv_conf=resolv)
    assert settings.resolved_dns_name == "cassandra.default.svc.corp.example"


def test_seeds_are_normalised_and_deduplicated_in_order() -> None:
    settings = load(
        {}, {"CASSANDRA_SEEDS": " 10.0.0.2, [fd00::0001],10.0.0.2,,"}, serviceaccount_namespace=no_namespace_file
    )
    assert settings.selection.static_seeds == ("10.0.0.2", "fd00::1")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CASSANDRA_SERVICE_NUM_SEEDS", "0", "invalid CASSANDRA_SERVICE_NUM_SEEDS='0'"),
        ("CASSANDRA_SERVICE_NUM_SEEDS", "three", "invalid CASSANDRA_SERVICE_NUM_SEEDS='three'"),
        ("CASSANDRA_SERVICE", "Cassandra_DB", "invalid CASSANDRA_SERVICE='Cassandra_DB'"),
        ("POD_IP", "10.0.0.300", "invalid POD_IP='10.0.0.300'"),
        ("SEEDSVC_PORT", "70000", "invalid SEEDSVC_PORT='70000'"),
        ("SEEDSVC_SOURCE", "consul", "invalid SEEDSVC_SOURCE='consul'"),
        ("SEEDSVC_API", "v1", "invalid SEEDSVC_API='v1'"),
        ("SEEDSVC_FLAP_GRACE", "nan", "invalid SEEDSVC_FLAP_GRACE='nan'"),
        ("SEEDSVC_DNS_NAMESERVER", "127.0.0.1:0", "invalid SEEDSVC_DNS_NAMESERVER='127.0.0.1:0'"),
        ("CASSANDRA_SEEDS", "10.0.0.1,cassandra-0", "invalid CASSANDRA_SEEDS='10.0.0.1,cassandra-0'"),
        ("SEEDSVC_LOG_FORMAT", "xml", "invalid SEEDSVC_LOG_FORMAT='xml'"),
    ],
)
def test_each_invalid_value_names_the_variable_and_the_value(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load({}, {variable: value}, serviceaccount_namespace=no_namespace_file)
    assert str(error.value).startswith(expected)
    assert "\n" not in str(error.value)


def test_an_invalid_flag_is_named_by_its_flag() -> None:
    with pytest.raises(ConfigError, match=r"^invalid --count='-1'"):
        load({"count": "-1"}, {"CASSANDRA_SERVICE_NUM_SEEDS": "3"}, serviceaccount_namespace=no_namespace_file)


def test_static_source_needs_seeds() -> None:
    with pytest.raises(ConfigError, match="CASSANDRA_SEEDS"):
        load({"source": "static"}, {}, serviceaccount_namespace=no_namespace_file)


def test_dns_refresh_bounds_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match="SEEDSVC_DNS_MIN_REFRESH"):
        load({"dns_min_refresh": "60", "dns_max_refresh": "5"}, {}, serviceaccount_namespace=no_namespace_file)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.10", ("10.0.0.10", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("fd00::1", ("fd00::1", 53)),
        ("kube-dns.kube-system", ("kube-dns.kube-system", 53)),
    ],
)
def test_host_port_forms(text: str, expected: tuple[str, int]) -> None:
    assert host_port(text) == expected


def test_every_option_has_a_unique_flag_variable_and_field() -> None:
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    envs = [env for o in OPTIONS for env in o.envs]
    assert len(set(envs)) == len(envs), "one variable sets one option"
    assert len({(o.group, o.field) for o in OPTIONS}) == len(OPTIONS)
    defaults = Settings()
    for option in OPTIONS:
        assert getattr(getattr(defaults, option.group), option.field) == option.default, option.name


# --- hostile values (issue 12): every option, the same classes of bug ------------------------------

# One valid value per option, as a person would write it. A new option needs a sample here, so the
# sweeps below cover it too.
SAMPLES = {
    "source": "dns", "service": "cassandra", "namespace": "db", "backoff_max": "30",
    "pod_name": "cassandra-1", "pod_ip": "10.0.0.5",
    "count": "3", "seeds": "10.0.0.1,fd00::1", "flap_grace": "30", "restart_fallback_after": "120",
    "bootstrap_ordinal": "0",
    "kubeconfig": "/etc/kube/config", "kubernetes_host": "10.96.0.1", "kubernetes_port": "443",
    "serviceaccount_dir": "/var/run/sa", "api": "auto", "connect_timeout": "5", "request_timeout": "10",
    "watch_timeout": "290", "token_reread": "60",
    "dns_name": "cassandra.db.svc.cluster.local", "dns_nameserver": "10.96.0.10:53", "srv_port_name": "cql",
    "cluster_domain": "cluster.local", "dns_min_refresh": "1", "dns_max_refresh": "30", "dns_timeout": "2",
    "host": "127.0.0.1", "port": "8080", "http_header_timeout": "10", "http_idle_timeout": "60",
    "http_max_connections": "512", "http_max_long_polls": "256", "http_trusted_networks": "127.0.0.0/8,::1/128",
    "log_format": "json", "log_level": "info", "state_file": "/var/lib/seeds.json",
    "datacenter": "dc1", "peers": "dc2=http://10.0.2.1:8080", "peer_count": "2",
    "peer_ca_file": "/etc/seedsvc/peers-ca.crt", "bootstrap_datacenter": "dc1", "peer_expiry": "86400",
    "relay_urls": "http://seedsvc-relay.db.svc:8080,http://10.0.3.1:8080",
}


def test_every_option_has_a_sample() -> None:
    assert set(SAMPLES) == {o.name for o in OPTIONS}
    for option in OPTIONS:
        option.parse(SAMPLES[option.name])


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.flag)
@pytest.mark.parametrize("tail", ["\n", "\r\n", "\x00", "\x85", "\u2028"])
def test_no_option_keeps_a_trailing_line_break_or_control_character(option: Option, tail: str) -> None:
    # `$` in a pattern matches before a final newline: "cassandra\n" passed as a Service name. Either
    # the value is refused, or what is kept is exactly the value without it (addresses are normalised).
    try:
        value = option.parse(SAMPLES[option.name] + tail)
    except ValueError:
        return
    assert value == option.parse(SAMPLES[option.name])
    assert tail not in str(value)


# Written as code points: ruff (rightly) flags look-alike digits in source text.
ARABIC_INDIC_DIGITS = str.maketrans({str(d): chr(0x0660 + d) for d in range(10)})
FULL_WIDTH_DIGITS = str.maketrans({str(d): chr(0xFF10 + d) for d in range(10)})


@pytest.mark.parametrize("option", [o for o in OPTIONS if any(c.isdigit() for c in SAMPLES[o.name])],
                         ids=lambda o: o.flag)
@pytest.mark.parametrize("digits", [ARABIC_INDIC_DIGITS, FULL_WIDTH_DIGITS], ids=["arabic-indic", "full-width"])
def test_no_option_takes_non_ascii_digits(option: Option, digits: dict[int, str]) -> None:
    # int() and float() accept any Unicode decimal digit; nobody means that in a port or a count.
    with pytest.raises(ValueError):
        option.parse(SAMPLES[option.name].translate(digits))


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("CASSANDRA_SERVICE", "cassandra\n", "Service name"),
        ("POD_NAME", "cassandra-1\n", "pod name"),
        ("POD_NAMESPACE", "db\n", "namespace"),
        ("SEEDSVC_SRV_PORT_NAME", "cql\n", "port name"),
        ("SEEDSVC_DNS_NAME", "cassandra.db.svc.cluster.local\n", "DNS name"),
        ("SEEDSVC_PORT", "8080".translate(ARABIC_INDIC_DIGITS), "whole number"),
        ("CASSANDRA_SERVICE_NUM_SEEDS", "3".translate(FULL_WIDTH_DIGITS), "whole number"),
        ("CASSANDRA_SERVICE_NUM_SEEDS", "1_0", "whole number"),
        ("SEEDSVC_FLAP_GRACE", "inf", "seconds"),
        ("SEEDSVC_FLAP_GRACE", "1_0", "seconds"),
        ("SEEDSVC_HOST", "999.1.1.1", "not a valid IP address"),
        ("KUBERNETES_SERVICE_HOST", "10.0.0.256", "not a valid IP address"),
        ("SEEDSVC_STATE_FILE", "/var/lib/seeds\x1b.json", "control character"),
        ("CASSANDRA_SEEDS", "0.0.0.0", "not a unicast address"),
        ("CASSANDRA_SEEDS", "10.0.0.1,::", "not a unicast address"),
        ("CASSANDRA_SEEDS", "224.0.0.1", "not a unicast address"),
        ("CASSANDRA_SEEDS", "ff02::1", "not a unicast address"),
        ("CASSANDRA_SEEDS", "255.255.255.255", "not a unicast address"),
    ],
)
def test_hostile_values_are_refused_naming_variable_and_value(variable: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        load({}, {variable: value}, serviceaccount_namespace=no_namespace_file)
    assert str(error.value).startswith(f"invalid {variable}={value!r}: ")
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_a_nameserver_host_name_is_resolved_once_at_load() -> None:
    # localhost comes from /etc/hosts: no DNS query leaves the machine.
    settings = load({"dns_nameserver": "localhost:5399"}, {}, serviceaccount_namespace=no_namespace_file)
    assert settings.dns.nameserver == ("127.0.0.1", 5399)


def unresolvable(host: str) -> str:
    # A fake resolver: a name that really does not resolve would send a query to the machine's DNS.
    raise OSError(-2, "Name or service not known")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"dns_nameserver": "kube-dns.kube-system:53"},
         "invalid --dns-nameserver='kube-dns.kube-system:53': cannot resolve kube-dns.kube-system"),
        ({"host": "sidecar.local"}, "invalid --host='sidecar.local': cannot resolve sidecar.local"),
    ],
)
def test_a_host_name_that_does_not_resolve_is_a_configuration_error(flags: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(flags, {}, serviceaccount_namespace=no_namespace_file, resolve=unresolvable)
    assert str(error.value) == f"{expected}: Name or service not known"


def test_an_older_variable_name_is_read_when_the_preferred_one_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # No option has an older name yet (--datacenter will: CASSANDRA_DC), so the table is patched to
    # give --pod-name one; everything else is the real loader.
    patched = tuple(replace(o, also_env=("OLD_POD_NAME",)) if o.name == "pod_name" else o for o in OPTIONS)
    monkeypatch.setattr("seedsvc.settings.OPTIONS", patched)
    assert load({}, {"OLD_POD_NAME": "cassandra-2"}, serviceaccount_namespace=no_namespace_file
                 ).identity.pod_name == "cassandra-2"
    both = {"POD_NAME": "cassandra-1", "OLD_POD_NAME": "cassandra-2"}
    assert load({}, both, serviceaccount_namespace=no_namespace_file).identity.pod_name == "cassandra-1"
    with pytest.raises(ConfigError, match=r"^invalid OLD_POD_NAME='X'"):
        load({}, {"OLD_POD_NAME": "X"}, serviceaccount_namespace=no_namespace_file)

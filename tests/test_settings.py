"""Settings: flag over environment, defaults from the pod's files, one clear error per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedsvc.settings import OPTIONS, ConfigError, Settings, cluster_domain_from_resolv_conf, load
from seedsvc.values import host_port


def no_namespace_file(_: Path) -> None:
    return None


def test_defaults_match_the_design_brief() -> None:
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
    assert len({o.flag for o in OPTIONS}) == len({o.env for o in OPTIONS}) == len(OPTIONS)
    assert len({(o.group, o.field) for o in OPTIONS}) == len(OPTIONS)
    defaults = Settings()
    for option in OPTIONS:
        assert getattr(getattr(defaults, option.group), option.field) == option.default, option.name

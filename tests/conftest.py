from hypothesis import HealthCheck, settings

# Fixture plugins: the control plane harness, and the real `seedsvc serve` subprocess helpers; the
# check that names a test which left a socket or transport behind.
pytest_plugins = ["tests.cluster_fixtures", "tests.sidecar_fixtures", "tests.leak_check"]

# Hypothesis's default per-example deadline (200 ms) and its slow-generation health check are
# wall-clock limits: at a load of 17 on 2 cores examples took 267 ms and generation over a second,
# failing 14 selection properties (CI's profile already drops both). Inherits the active profile, so
# CI keeps its derandomized runs and --hypothesis-profile still wins.
settings.register_profile(
    "loaded-machine", parent=settings(), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("loaded-machine")

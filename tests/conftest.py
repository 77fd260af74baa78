# Fixture plugins: the control plane harness, and the real `seedsvc serve` subprocess helpers.
pytest_plugins = ["tests.cluster_fixtures", "tests.sidecar_fixtures"]

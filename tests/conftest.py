# Fixture plugins: the control plane harness, and the real `seedsvc serve` subprocess helpers.
pytest_plugins = ["tests.harness.fixtures", "tests.sidecar_process"]

"""The README stays true to the code: every setting documented, the test command the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from seedsvc.settings import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_option_is_in_the_readme_configuration_table() -> None:
    rows = {line for line in README.splitlines() if line.startswith("| `--")}
    for option in OPTIONS:
        assert any(f"`{option.flag}`" in row and f"`{option.env}`" in row for row in rows), option.flag


def test_readme_documents_no_option_that_does_not_exist() -> None:
    documented = set(re.findall(r"^\| `(--[a-z-]+)`", README, flags=re.MULTILINE))
    assert documented == {o.flag for o in OPTIONS}


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in README and "make demo" in README

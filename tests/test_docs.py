"""The README stays true to the code: every setting documented, the test command the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

from seedsvc.settings import OPTIONS, configuration_tables

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Pages that document other programs' flags (Maven, the control plane, the harness, benchmarks).
NOT_SEEDSVC_FLAGS = {"java-shim.md", "controlplane.md", "cassandra-harness.md", "benchmarks.md", "end-to-end.md",
                     "deploy.md"}


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


def test_the_configuration_tables_are_generated_from_the_declarations() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    generated = text.split("-->\n", 1)[1].split("<!-- end of generated part -->", 1)[0]
    assert generated == configuration_tables(), (
        "regenerate: python -c 'from seedsvc.settings import configuration_tables as t; print(t(), end=\"\")'")


def test_every_flag_and_variable_in_the_docs_exists() -> None:
    # Prose anywhere in docs/ may name settings; a renamed or removed one must not linger there.
    flags = {o.flag for o in OPTIONS} | {"--help", "--version", "--json", "--timeout"}
    envs = {o.env for o in OPTIONS}
    for page in (ROOT / "docs").glob("*.md"):
        text = page.read_text()
        for env in re.findall(r"`(SEEDSVC_[A-Z_]+)", text):
            assert env in envs or env.startswith("SEEDSVC_SHIM_"), f"{page.name}: {env}"
        for flag in re.findall(r"`(--[a-z][-a-z]*)", text):
            assert flag in flags or page.name in NOT_SEEDSVC_FLAGS, f"{page.name}: {flag}"


def test_the_architecture_page_lists_every_installed_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    for package in (ROOT / "seedsvc", ROOT / "sidecar" / "seedsvc_sidecar"):
        for module in sorted(package.rglob("*.py")):
            # Listed as a line of the tree: the file name, indented under its folder.
            assert re.search(rf"^\s+{re.escape(module.name)}\s", page, flags=re.MULTILINE), module

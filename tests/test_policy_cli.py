"""``reelguard policy validate|show|schema`` through click's CliRunner, via the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from gateway.cli import main
from policies.loader import DEFAULT_POLICY_PATH, load_policy

FIXTURES = Path(__file__).parent / "policies"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("REELGUARD_POLICY", raising=False)
    monkeypatch.delenv("REELGUARD_TENANT_POLICY_DIR", raising=False)
    return CliRunner()


def test_validate_good_files(runner: CliRunner) -> None:
    files = [str(DEFAULT_POLICY_PATH), str(FIXTURES / "kids.yaml"), str(FIXTURES / "studio.yaml")]
    result = runner.invoke(main, ["policy", "validate", *files])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    kids = load_policy(FIXTURES / "kids.yaml").version
    assert lines[1].startswith("OK ") and lines[1].endswith(f"kids.yaml version {kids}")


def test_validate_bad_file_exits_1_with_located_errors(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: default\ncategories:\n  violence:\n    prompt: {block_at: 1.5}\n")
    result = runner.invoke(main, ["policy", "validate", str(FIXTURES / "kids.yaml"), str(bad)])
    assert result.exit_code == 1
    assert "OK " in result.stdout
    assert (
        f"{bad}:4: categories.violence.prompt.block_at: must be between 0 and 1 (got 1.5); "
        "set a value from 0 to 1" in result.stderr
    )
    assert "Error: 1 of 2 policy file(s) invalid" in result.stderr
    assert "Traceback" not in result.output


def test_validate_overlay_against_a_custom_base(runner: CliRunner, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(DEFAULT_POLICY_PATH.read_text().replace("timeout_s: 60", "timeout_s: 20"))
    overlay = tmp_path / "o.yaml"
    overlay.write_text("extends: default\n")
    result = runner.invoke(main, ["policy", "validate", "--policy", str(base), str(overlay)])
    assert result.exit_code == 0
    assert load_policy(base).version in result.stdout


def test_show_yaml_round_trips_to_the_same_version(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["policy", "show", "--tenant", "kids", "--tenant-dir", str(FIXTURES)]
    )
    assert result.exit_code == 0, result.output
    kids = load_policy(FIXTURES / "kids.yaml")
    assert f"# version: {kids.version}" in result.stdout
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(result.stdout)
    assert load_policy(dumped).version == kids.version  # the shown policy is the served one


def test_show_json(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["policy", "show", "--tenant", "studio", "--tenant-dir", str(FIXTURES), "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["tenant"] == "studio"
    assert doc["version"] == load_policy(FIXTURES / "studio.yaml").version
    assert doc["policy"]["categories"]["violence"]["prompt"]["block_at"] == 1.0
    assert [Path(s).name for s in doc["sources"]] == ["default.yaml", "studio.yaml"]


def test_show_unknown_tenant_gets_the_base(runner: CliRunner) -> None:
    result = runner.invoke(
        main, ["policy", "show", "--tenant", "acme", "--tenant-dir", str(FIXTURES), "--json"]
    )
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"] == load_policy(DEFAULT_POLICY_PATH).version
    assert "Warning: no acme.yaml in" in result.stderr
    assert "tenant 'acme' gets the base policy (tenants with an overlay there: kids" in (
        result.stderr
    )


def test_show_names_a_tenant_without_a_folder_as_a_mistake(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a tenant folder every tenant gets the base policy: showing "kids" would quietly
    # show the wrong policy, so the command says what is missing instead.
    monkeypatch.delenv("REELGUARD_TENANT_POLICY_DIR", raising=False)
    result = runner.invoke(main, ["policy", "show", "--tenant", "kids"])
    assert result.exit_code == 1
    assert "--tenant kids: no tenant policy folder is configured here" in result.stderr
    assert "REELGUARD_TENANT_POLICY_DIR" in result.stderr
    assert runner.invoke(main, ["policy", "show"]).exit_code == 0  # the base needs no folder


def test_show_reads_settings_from_the_environment(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REELGUARD_TENANT_POLICY_DIR", str(FIXTURES))
    result = runner.invoke(main, ["policy", "show", "--tenant", "kids", "--json"])
    assert json.loads(result.stdout)["version"] == load_policy(FIXTURES / "kids.yaml").version


def test_show_invalid_policy_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text("extends: default\nfoo: 1\n")
    result = runner.invoke(
        main, ["policy", "show", "--tenant", "acme", "--tenant-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "acme.yaml:2: (top level): unknown field 'foo'" in result.stderr


def test_show_missing_tenant_dir(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["policy", "show", "--tenant", "x", "--tenant-dir", str(tmp_path / "nope")]
    )
    assert result.exit_code == 1
    assert "not found; fix --tenant-dir" in result.stderr


def test_show_rejects_a_bad_tenant_name(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policy", "show", "--tenant", "../etc/passwd"])
    assert result.exit_code == 1
    assert "invalid tenant name" in result.stderr


def test_schema(runner: CliRunner) -> None:
    result = runner.invoke(main, ["policy", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "ReelGuard policy"
    assert "sexual/minors" in schema["$defs"]["Categories"]["properties"]
    overlay = json.loads(runner.invoke(main, ["policy", "schema", "--overlay"]).stdout)
    assert overlay["required"] == ["extends"]


def test_default_policy_validates_against_its_json_schema(runner: CliRunner) -> None:
    schema = json.loads(runner.invoke(main, ["policy", "schema"]).stdout)
    jsonschema.validate(yaml.safe_load(DEFAULT_POLICY_PATH.read_text()), schema)
    overlay = json.loads(runner.invoke(main, ["policy", "schema", "--overlay"]).stdout)
    for path in FIXTURES.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), overlay)


@pytest.mark.parametrize("command", ["validate", "show", "schema", "test", "diff"])
def test_every_command_is_documented(runner: CliRunner, command: str) -> None:
    result = runner.invoke(main, ["policy", command, "-h"])
    assert result.exit_code == 0
    assert len(result.stdout.split("Options:")[0].strip().splitlines()) >= 3

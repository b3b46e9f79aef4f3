"""`reelguard moderate` (batch JSONL) and `reelguard serve` start-up, through click's CliRunner."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from config.settings import Settings
from gateway.cli import main
from gateway.keys import KeyStore
from gateway.serve import first_run_key


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_moderate_writes_one_row_per_input_in_order(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "text": "a cat on a sofa"},
        {"id": 2, "text": "a hardcore p0rn scene"},
        {"id": "c", "text": "sunrise over the alps"},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out" / "results.jsonl"
    db = tmp_path / "audit.db"
    result = CliRunner().invoke(
        main, ["moderate", "--input", str(src), "--output", str(out), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    assert "2 allow, 0 review, 1 block" in result.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == ["a", 2, "c"]
    assert [g["action"] for g in got] == ["allow", "block", "allow"]
    assert set(got[0]) == {
        "id",
        "flagged",
        "action",
        "categories",
        "category_scores",
        "reasons",
        "policy_version",
    }
    assert got[1]["flagged"] and got[1]["categories"]["sexual"]
    assert got[1]["reasons"][0]["evidence"]
    audit = sqlite3.connect(db).execute("select action, endpoint from requests order by seq")
    assert [tuple(r) for r in audit] == [
        ("allow", "moderations"),
        ("block", "moderations"),
        ("allow", "moderations"),
    ]


def test_moderate_passes_extra_fields_through(tmp_path: Path) -> None:
    # A trust team's labelled file: its own fields come back on each output row, in place.
    rows = [
        {"id": "a", "text": "a cat on a sofa", "label": "safe", "note": {"by": "kim"}},
        {"id": "b", "text": "a hardcore p0rn scene", "label": "sexual"},
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    args = ["moderate", "--input", str(src), "--output", str(out), "--db", str(tmp_path / "a.db")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(g["id"], g["label"], g["action"]) for g in got] == [
        ("a", "safe", "allow"),
        ("b", "sexual", "block"),
    ]
    assert got[0]["note"] == {"by": "kim"} and "note" not in got[1]
    assert list(got[0])[:4] == ["id", "label", "note", "flagged"] and "text" not in got[0]


def test_moderate_honours_the_tenant_folder_setting_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "kids.yaml").write_text(
        "extends: default\ncategories:\n  violence:\n    blocklist:\n      terms: [water pistol]\n"
    )
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a water pistol fight"}])
    out = tmp_path / "out.jsonl"
    args = ["moderate", "--input", str(src), "--output", str(out), "--db", str(tmp_path / "a.db")]
    monkeypatch.delenv("REELGUARD_TENANT_POLICY_DIR", raising=False)
    # No folder at all: naming a tenant would quietly use the base policy.
    result = CliRunner().invoke(main, [*args, "--tenant", "kids"])
    assert result.exit_code == 1 and not out.exists()
    assert "--tenant kids: no tenant policy folder is configured here" in result.output
    # The folder from the environment, as `reelguard serve` reads it.
    monkeypatch.setenv("REELGUARD_TENANT_POLICY_DIR", str(tenants))
    result = CliRunner().invoke(main, [*args, "--tenant", "kids"])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["action"] == "block"
    assert "Warning" not in result.stderr
    # A tenant with no overlay there gets the base policy, and the user is told.
    result = CliRunner().invoke(main, [*args, "--tenant", "kid"])
    assert result.exit_code == 0, result.output
    assert "Warning: no kid.yaml in" in result.stderr and "did you mean 'kids'?" in result.stderr
    assert json.loads(out.read_text())["action"] == "allow"


def test_moderate_applies_the_tenant_overlay(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "kids.yaml").write_text(
        "extends: default\ncategories:\n  violence:\n    blocklist:\n      terms: [water pistol]\n"
    )
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "a water pistol fight"}])
    out = tmp_path / "out.jsonl"
    args = ["moderate", "--input", str(src), "--output", str(out), "--db", str(tmp_path / "a.db")]
    result = CliRunner().invoke(main, [*args, "--tenant", "kids", "--tenant-dir", str(tenants)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["action"] == "block"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": 1, "text": "ok"}', "{not json"], "in.jsonl:2: not valid JSON"),
        (['{"id": 1}'], "in.jsonl:1: 'text' must be a string"),
        (['{"text": "x"}'], "in.jsonl:1: 'id' must be a string or an integer"),
        (['{"id": true, "text": "x"}'], "'id' must be a string or an integer"),
        (['["x"]'], "in.jsonl:1: expected a JSON object"),
        (['{"id": 1, "txt": "x"}'], "in.jsonl:1: 'text' must be a string, and the row has none"),
        (
            ['{"id": 1, "text": "x", "action": "block"}'],
            "field(s) action would be overwritten by the result of the same name",
        ),
        (['{"id": 1, "text": "x"}', "", '{"id": 1, "text": "y"}'], "in.jsonl:3: id 1 already used"),
        (['{"id": 1, "text": "' + "a" * 10_001 + '"}'], "the limit is 10000"),
    ],
)
def test_moderate_names_the_bad_line_and_writes_nothing(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["moderate", "--input", str(src), "--output", str(out), "--db", str(tmp_path / "a.db")],
    )
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_moderate_refuses_a_broken_policy_with_its_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: {}\n")
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "x"}])
    result = CliRunner().invoke(
        main,
        [
            "moderate",
            "--input",
            str(src),
            "--output",
            str(tmp_path / "o.jsonl"),
            "--policy",
            str(bad),
            "--db",
            str(tmp_path / "a.db"),
        ],
    )
    assert result.exit_code == 1
    assert "bad.yaml" in result.output
    assert "Traceback" not in result.output


def test_moderate_rejects_a_bad_tenant_name(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "x"}])
    result = CliRunner().invoke(
        main,
        ["moderate", "--input", str(src), "--output", str(tmp_path / "o"), "--tenant", "../x"],
    )
    assert result.exit_code == 1
    assert "invalid tenant name" in result.output


# -- serve ---------------------------------------------------------------------------------


def test_first_start_creates_one_key_and_prints_it(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "r.db")
    message = first_run_key(settings)
    token = next(w for w in message.split() if w.startswith("rg_"))
    store = KeyStore(settings.db)
    key = store.authenticate(token)
    assert key is not None and key.tenant == "default"
    assert "curl" in message
    assert "1 active API key" in first_run_key(settings)  # the second start creates none
    assert store.count_active() == 1
    store.close()


def test_no_bootstrap_key_explains_how_to_create_one(tmp_path: Path) -> None:
    settings = Settings(db=tmp_path / "r.db", bootstrap_key=False)
    message = first_run_key(settings)
    assert "reelguard keys create --tenant NAME" in message
    store = KeyStore(settings.db)
    assert store.count_active() == 0
    store.close()


def test_serve_refuses_a_broken_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories: [\n")
    result = CliRunner().invoke(
        main, ["serve", "--policy", str(bad), "--db", str(tmp_path / "r.db")]
    )
    assert result.exit_code == 1
    assert "bad.yaml" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "command",
    [["serve"], ["moderate"], ["keys"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"]],
)
def test_every_gateway_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) > 3


@pytest.mark.slow
def test_moderate_shows_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """Run the real command with stderr on a pseudo-terminal; stdout stays clean."""
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": "a cat"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    env |= {"TERM": "xterm", "COLUMNS": "100"}
    env.pop("CI", None)  # rich treats CI as a non-interactive terminal
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "moderate",
            "--input",
            str(src),
            "--output",
            str(out),
            "--db",
            str(tmp_path / "a.db"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
        timeout=300,
        check=False,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    terminal = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, terminal
    assert "moderating" in terminal
    assert "Wrote 5 results" in terminal
    assert proc.stdout == b""
    assert len(out.read_text().splitlines()) == 5


def _walk(
    command: click.Command, path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], click.Command]]:
    found = [(path, command)]
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            found += _walk(sub, (*path, name))
    return found


ALL_COMMANDS = _walk(main, ())


@pytest.mark.parametrize(
    ("path", "command"), ALL_COMMANDS, ids=[" ".join(p) or "reelguard" for p, _ in ALL_COMMANDS]
)
def test_every_command_has_help_text(path: tuple[str, ...], command: click.Command) -> None:
    assert (command.help or "").strip(), f"reelguard {' '.join(path)} has no docstring"
    result = CliRunner().invoke(main, [*path, "-h"])
    assert result.exit_code == 0, result.output


def test_every_top_level_command_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    missing = [name for name in main.commands if f"reelguard {name}" not in readme]
    assert not missing, f"README.md does not mention: {missing}"

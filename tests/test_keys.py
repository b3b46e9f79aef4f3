"""API keys: hashed at rest, tenant mapping, revocation, and the `reelguard keys` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_audit_support import RawConnection

from gateway.cli import main
from gateway.keys import InvalidTenant, KeyStore, UnknownKey, hash_token


@pytest.fixture
def store(db_target: Path | str) -> KeyStore:
    s = KeyStore(db_target)
    yield s
    s.close()


def test_create_then_authenticate_maps_to_tenant(store: KeyStore) -> None:
    created = store.create("acme")
    key = store.authenticate(created.token)
    assert key is not None
    assert key.tenant == "acme"
    assert key.key_id == created.key.key_id
    assert created.token.startswith(f"rg_{created.key.key_id}_")


def test_keys_are_stored_hashed_only(store: KeyStore) -> None:
    created = store.create("acme")
    raw = RawConnection(store.database).execute("select * from api_keys").fetchall()
    dump = json.dumps(raw)
    assert created.token not in dump
    secret = created.token.rsplit("_", 1)[1]
    assert secret not in dump
    assert hash_token(created.token) in dump


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "empty"),
        ("rg_nothing_here", "well-formed but unknown"),
        ("not-a-key", "wrong prefix"),
        ("rg_" + "x" * 300, "absurdly long"),
    ],
)
def test_unknown_tokens_are_rejected(store: KeyStore, token: str, why: str) -> None:
    store.create("acme")
    assert store.authenticate(token) is None, why


def test_a_token_with_one_changed_character_is_rejected(store: KeyStore) -> None:
    token = store.create("acme").token
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert store.authenticate(flipped) is None


def test_revoke_stops_the_key_and_is_idempotent(store: KeyStore) -> None:
    created = store.create("acme")
    other = store.create("acme")
    revoked = store.revoke(created.key.key_id)
    assert revoked.revoked_at is not None
    assert store.authenticate(created.token) is None
    assert store.authenticate(other.token) is not None
    assert store.revoke(created.key.key_id).revoked_at == revoked.revoked_at
    assert store.count_active() == 1
    assert [k.active for k in store.list()] == [False, True]


def test_a_lookup_is_one_statement_and_sees_a_revocation_at_once(db_target: Path | str) -> None:
    """Every request looks its key up: one statement in autocommit (no BEGIN/COMMIT round
    trips), and a key revoked through another connection (another web process) is refused by
    the very next lookup: nothing caches it."""
    serving, admin = KeyStore(db_target), KeyStore(db_target)
    created = admin.create("acme")
    statements: list[str] = []
    serving.database.trace(statements.append)
    assert serving.authenticate(created.token) is not None
    assert [s.split()[0] for s in statements] == ["SELECT"]
    admin.revoke(created.key.key_id)
    assert serving.authenticate(created.token) is None
    serving.database.trace(None)
    with serving.database.transaction(write=True) as tx:  # inside a transaction: joins it
        tx.execute("UPDATE api_keys SET revoked_at = NULL WHERE key_id = ?", (created.key.key_id,))
        assert serving.authenticate(created.token) is not None
        tx.execute("UPDATE api_keys SET revoked_at = 'x' WHERE key_id = ?", (created.key.key_id,))
    assert serving.authenticate(created.token) is None
    serving.close()
    admin.close()


def test_revoke_unknown_key_names_the_fix(store: KeyStore) -> None:
    with pytest.raises(UnknownKey, match="keys list"):
        store.revoke("deadbeef")


@pytest.mark.parametrize("tenant", ["", "Acme", "../etc", "a b", "-x", "x" * 64, "acme.yaml"])
def test_tenant_names_must_be_safe_file_names(store: KeyStore, tenant: str) -> None:
    with pytest.raises(InvalidTenant, match="lower-case"):
        store.create(tenant)


def test_keys_survive_reopening_the_database(db_target: Path | str) -> None:
    first = KeyStore(db_target)
    token = first.create("acme").token
    first.close()
    second = KeyStore(db_target)
    assert second.authenticate(token) is not None
    second.close()


# -- CLI -----------------------------------------------------------------------------------


def test_cli_create_prints_the_key_once_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REELGUARD_TENANT_POLICY_DIR", raising=False)
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(main, ["keys", "create", "--tenant", "acme", "--db", str(db)])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("rg_")
    assert "shown only now" in result.stderr
    # No tenant folder here: the CLI cannot know the server's, so it does not claim a policy.
    assert "it cannot be checked whether tenant 'acme' has an overlay" in result.stderr
    assert "gets the base policy" not in result.stderr
    store = KeyStore(db)
    key = store.authenticate(token)
    store.close()
    assert key is not None and key.tenant == "acme"


def test_cli_list_and_revoke(db_target: Path | str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A SQLite file is named with --db; PostgreSQL with REELGUARD_DATABASE_URL, which every
    # command honours when --db is not given.
    if isinstance(db_target, Path):
        db = ["--db", str(db_target)]
    else:
        db = []
        monkeypatch.setenv("REELGUARD_DATABASE_URL", db_target)
    runner = CliRunner()
    token = runner.invoke(main, ["keys", "create", "--tenant", "acme", *db]).stdout.strip()
    listed = runner.invoke(main, ["keys", "list", *db, "--json"])
    assert listed.exit_code == 0
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["tenant"] == "acme" and row["revoked_at"] is None
    assert token not in listed.output

    revoked = runner.invoke(main, ["keys", "revoke", row["key_id"], *db])
    assert revoked.exit_code == 0, revoked.output
    table = runner.invoke(main, ["keys", "list", *db])
    assert "revoked" in table.stdout

    missing = runner.invoke(main, ["keys", "revoke", "nope", *db])
    assert missing.exit_code == 1
    assert "keys list" in missing.output


def test_cli_rejects_a_bad_tenant_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["keys", "create", "--tenant", "Bad Name", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 1
    assert "invalid tenant name" in result.output
    assert "Traceback" not in result.output


def test_cli_list_on_an_empty_database_says_how_to_create(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["keys", "list", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0
    assert "keys create --tenant" in result.output


def test_cli_create_is_quiet_about_policy_when_the_overlay_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").write_text("extends: default\n")
    monkeypatch.setenv("REELGUARD_TENANT_POLICY_DIR", str(tenants))
    result = CliRunner().invoke(
        main, ["keys", "create", "--tenant", "acme", "--db", str(tmp_path / "x.db")]
    )
    assert result.exit_code == 0
    assert "base policy" not in result.stderr


def test_cli_create_warns_about_a_tenant_without_an_overlay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "kids.yaml").write_text("extends: default\n")
    monkeypatch.setenv("REELGUARD_TENANT_POLICY_DIR", str(tenants))
    db = str(tmp_path / "x.db")
    result = CliRunner().invoke(main, ["keys", "create", "--tenant", "kid", "--db", db])
    assert result.exit_code == 0, result.output  # a warning: the tenant may be meant so
    assert "Warning: no kid.yaml in" in result.stderr
    assert "tenant 'kid' gets the base policy (tenants with an overlay there: kids)" in (
        result.stderr
    )
    assert "did you mean 'kids'?" in result.stderr
    # --tenant-dir overrides the environment, like `serve`.
    result = CliRunner().invoke(
        main, ["keys", "create", "--tenant", "kids", "--db", db, "--tenant-dir", str(tmp_path)]
    )
    assert "Warning: no kids.yaml" in result.stderr
    missing = CliRunner().invoke(
        main, ["keys", "create", "--tenant", "kids", "--db", db, "--tenant-dir", "nope"]
    )
    assert missing.exit_code == 1 and "tenant policy folder nope not found" in missing.output

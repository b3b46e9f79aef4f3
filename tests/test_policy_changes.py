"""Every policy change is a chained audit record; a removed tenant overlay is loud.

Deleting ``tenant-policies/kids.yaml`` while the server runs drops that tenant to the base
policy. That must not pass as an INFO line with ``/healthz`` still ``ok``: it is chained with
the old and new version, logged as a WARNING, and keeps ``/healthz`` ``degraded`` (naming the
tenant) until ``reelguard policy ack`` or a restart with the new layout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from audit.log import AuditLog
from config.settings import Settings
from gateway.app import create_app
from gateway.cli import main

KIDS = "extends: default\ncategories:\n  violence:\n    blocklist:\n      terms: [water pistol]\n"


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return got


def changes(settings: Settings, tenant: str | None = None) -> list[tuple[str, str, Any, Any]]:
    rows = AuditLog(settings.db).policy_changes(tenant)
    return [(r["tenant"], r["change"], r["previous"], r["version"]) for r in rows]


def test_a_removed_overlay_is_chained_warned_and_degrades_healthz_until_acknowledged(
    settings: Settings,
    text_classifiers: Mapping[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert settings.tenant_policy_dir is not None
    overlay = settings.tenant_policy_dir / "kids.yaml"
    overlay.write_text(KIDS)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        health = client.get("/healthz").json()
        kids_v1, base = (
            health["policy"]["versions"]["kids"],
            health["policy"]["versions"]["default"],
        )
        assert health["status"] == "ok" and health["policy"]["removed_overlays"] == []
        assert changes(settings) == [
            ("default", "load", None, base),
            ("kids", "load", None, kids_v1),
        ]

        overlay.write_text(KIDS.replace("water pistol", "water gun"))
        kids_v2 = wait_for(
            lambda: (
                (v := client.get("/healthz").json()["policy"]["versions"]["kids"]) != kids_v1 and v
            )
        )
        assert changes(settings, "kids")[-1] == ("kids", "edited", kids_v1, kids_v2)

        policy_log = logging.getLogger("reelguard.policy")  # the app's logging may not propagate
        policy_log.addHandler(caplog.handler)
        try:
            overlay.unlink()
            health = wait_for(
                lambda: (h := client.get("/healthz").json())["status"] == "degraded" and h
            )
        finally:
            policy_log.removeHandler(caplog.handler)
        (removed,) = health["policy"]["removed_overlays"]
        assert removed["tenant"] == "kids" and removed["file"].endswith("kids.yaml")
        assert (removed["previous_version"], removed["version"]) == (kids_v2, base)
        assert "kids" not in health["policy"]["versions"]
        assert changes(settings, "kids")[-1] == ("kids", "removed", kids_v2, base)
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "tenant kids: its policy overlay" in warning.getMessage()
        assert "it now gets the base policy" in warning.getMessage()
        assert client.get("/healthz").json()["status"] == "degraded"  # it stays so

        # Acknowledged by a person, on record; /healthz is ok again.
        ack = CliRunner().invoke(
            main, ["policy", "ack", "kids", "--actor", "alice", "--db", str(settings.db)]
        )
        assert ack.exit_code == 0, ack.output
        assert "recorded for alice" in ack.output
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["policy"]["removed_overlays"] == []
        assert changes(settings, "kids")[-1] == ("kids", "ack", kids_v2, base)
        again = CliRunner().invoke(
            main, ["policy", "ack", "kids", "--actor", "alice", "--db", str(settings.db)]
        )
        assert again.exit_code == 1 and "no removed overlay to acknowledge" in again.output

    history = CliRunner().invoke(main, ["policy", "history", "--db", str(settings.db)])
    assert history.exit_code == 0 and history.output.count("\n") == 5
    verify = CliRunner().invoke(main, ["audit", "verify", "--db", str(settings.db)])
    assert verify.exit_code == 0, verify.output  # the records are part of the hash chain


def test_a_restart_with_the_new_layout_records_it_and_is_ok(
    settings: Settings, text_classifiers: Mapping[str, Any]
) -> None:
    assert settings.tenant_policy_dir is not None
    overlay = settings.tenant_policy_dir / "kids.yaml"
    overlay.write_text(KIDS)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        kids = client.get("/healthz").json()["policy"]["versions"]["kids"]
    overlay.unlink()  # while the server is down
    for _ in range(2):  # the second start finds nothing new to record
        with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
            health = client.get("/healthz").json()
            assert health["status"] == "ok" and health["policy"]["removed_overlays"] == []
    base = health["policy"]["versions"]["default"]
    assert changes(settings, "kids") == [
        ("kids", "load", None, kids),
        ("kids", "removed", kids, base),
    ]
    overlay.write_text(KIDS)  # put back: the next start records it again
    with TestClient(create_app(settings, classifiers=text_classifiers)):
        pass
    assert changes(settings, "kids")[-1] == ("kids", "load", base, kids)  # base served before


def test_an_overlay_put_back_clears_the_alert(
    settings: Settings, text_classifiers: Mapping[str, Any]
) -> None:
    assert settings.tenant_policy_dir is not None
    overlay = settings.tenant_policy_dir / "kids.yaml"
    overlay.write_text(KIDS)
    with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
        overlay.unlink()
        wait_for(lambda: client.get("/healthz").json()["status"] == "degraded")
        overlay.write_text(KIDS)
        wait_for(lambda: client.get("/healthz").json()["status"] == "ok")
    assert [c for _, c, _, _ in changes(settings, "kids")] == ["load", "removed", "added"]

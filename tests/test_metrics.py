"""``GET /metrics`` over the real app, metrics from several processes adding up, and the JSON
request/job events. Metric values are process-wide, so tests compare before and after."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from test_audit_support import moderation

from audit.log import AuditLog
from config.settings import Settings
from gateway import logs, metrics
from gateway.app import create_app
from policies.decision import Action

TOKEN = "metrics-token-0123456789"


def value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` in Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return 0.0


@pytest.fixture
def metered(settings: Settings, text_classifiers: Any) -> Any:
    app = create_app(
        settings.model_copy(update={"metrics_token": TOKEN}), classifiers=text_classifiers
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def scrape(client: Any) -> str:
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return str(answer.text)


def test_metrics_need_the_token(metered: Any, client: Any) -> None:
    assert client.get("/metrics").status_code == 404  # no token configured: not served
    assert "REELGUARD_METRICS_TOKEN" in client.get("/metrics").json()["detail"]
    assert metered.get("/metrics").status_code == 401
    wrong = metered.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401
    assert "reelguard_http_requests_total" in scrape(metered)


def test_requests_decisions_and_classifiers_are_counted(metered: Any, api_key: str) -> None:
    before = scrape(metered)
    headers = {"Authorization": f"Bearer {api_key}"}
    answer = metered.post(
        "/v1/moderations", json={"input": "a hardcore p0rn scene"}, headers=headers
    )
    assert answer.status_code == 200 and answer.json()["results"][0]["action"] == "block"
    assert metered.get("/no/such/route").status_code == 404
    after = scrape(metered)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "POST", "route": "/v1/moderations", "status": "200"}
    assert delta("reelguard_http_requests_total", **route) == 1
    assert delta("reelguard_http_requests_total", route="unmatched", status="404") == 1
    assert delta("reelguard_http_request_duration_seconds_count", route="/v1/moderations") == 1
    decision = {"tenant": "default", "stage": "prompt", "action": "block", "category": "sexual"}
    assert delta("reelguard_moderation_decisions_total", **decision) == 1
    lexicon = {"stage": "prompt", "classifier": "lexicon"}
    assert delta("reelguard_classifier_duration_seconds_count", **lexicon) == 1


def test_review_backlog_and_queue_depth_come_from_the_database(
    metered: Any, settings: Settings
) -> None:
    log = AuditLog(settings.db)
    log.record_moderation(moderation("modr-m1", tenant="acme", action=Action.REVIEW))
    log.record_moderation(moderation("modr-m2", tenant="acme", action=Action.REVIEW))
    log.close()
    text = scrape(metered)
    assert value(text, "reelguard_review_backlog", tenant="acme", kind="prompt_review") == 2
    assert value(text, "reelguard_review_backlog_oldest_seconds", tenant="acme") >= 0
    assert "reelguard_queue_jobs" in text


def test_metrics_of_other_processes_add_up(metered: Any, settings: Settings) -> None:
    """A worker process writes to the same folder; the web process's scrape includes it, and a
    worker that is gone no longer counts as alive."""
    directory = metrics.setup(settings)
    before = scrape(metered)
    child = textwrap.dedent(
        """
        import os
        import sys
        from gateway import metrics
        from config.settings import Settings
        metrics.setup(Settings())
        for _ in range(3):
            metrics.count_lease_loss()
        metrics.worker_alive()
        sys.stdout.write(f"ok {os.getpid()}")
        """
    )
    env = {**os.environ, metrics.ENV_DIR: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=120
    )
    said, child_pid = done.stdout.split()
    assert said == "ok", done.stderr
    after = scrape(metered)
    losses = "reelguard_job_lease_losses_total"
    assert value(after, losses) - value(before, losses) == 3
    assert value(after, "reelguard_workers") >= 1
    # The child by its own pid: other processes of this test run (servers, workers) left files
    # in the same folder, so "some other pid's file" may not be the child's.
    assert child_pid in _pids_of(directory, "gauge_livesum")
    metrics.process_gone(int(child_pid))
    assert value(scrape(metered), losses) - value(before, losses) == 3  # counters stay
    assert value(scrape(metered), "reelguard_workers") == value(before, "reelguard_workers")


def _pids_of(directory: Path, prefix: str) -> list[str]:
    return [p.stem.rsplit("_", 1)[1] for p in directory.glob(f"{prefix}_*.db")]


def test_prepare_dir_keeps_live_processes_files(tmp_path: Path) -> None:
    (tmp_path / f"counter_{os.getpid()}.db").write_bytes(b"x")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    (tmp_path / f"histogram_{dead.stdout.strip()}.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not ours")
    assert metrics.prepare_dir(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"counter_{os.getpid()}.db",
        "notes.txt",
    ]


# -- structured logs ---------------------------------------------------------------------------


@pytest.fixture
def json_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(logs._settings, "json", True)
    monkeypatch.setitem(logs._settings, "log_prompts", False)


def test_request_events_carry_ids_and_no_prompt_or_key(
    json_events: None, metered: Any, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    prompt = "a hardcore p0rn scene on a beach"
    with caplog.at_level(logging.INFO, logger="reelguard.access"):
        answer = metered.post(
            "/v1/moderations",
            json={"input": prompt},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    records = [r for r in caplog.records if r.name == "reelguard.access"]
    assert len(records) == 1
    line = logs.JsonFormatter().format(records[0])
    event = json.loads(line)
    assert event["event"] == "request" and event["status"] == 200
    assert event["request_id"] == answer.headers["x-request-id"]
    assert event["tenant"] == "default" and event["action"] == "block"
    assert event["route"] == "/v1/moderations" and event["latency_ms"] > 0
    assert "p0rn" not in line and api_key not in line and api_key[:12] not in line


def test_json_formatter_drops_prompts_unless_allowed() -> None:
    record = logging.LogRecord("reelguard.jobs", logging.INFO, __file__, 1, "job x", (), None)
    record.reelguard_event = {"event": "job", "job_id": "video_1", "prompt": "secret words"}
    hidden = json.loads(logs.JsonFormatter().format(record))
    assert hidden["job_id"] == "video_1" and "prompt" not in hidden
    shown = json.loads(logs.JsonFormatter(log_prompts=True).format(record))
    assert shown["prompt"] == "secret words"


def test_plain_mode_writes_no_request_events(
    metered: Any, api_key: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(logs._settings, "json", False)
    with caplog.at_level(logging.INFO, logger="reelguard.access"):
        metered.post(
            "/v1/moderations",
            json={"input": "a cat"},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert not [r for r in caplog.records if r.name == "reelguard.access"]

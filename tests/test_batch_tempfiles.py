"""``reelguard moderate`` leaves no temporary output files behind (issue 10, item 12): a run
stopped by SIGTERM or Ctrl-C removes its own, and a run killed outright (``kill -9``) has its
file removed by the next run for the same output.

Before, a killed run left ``.out.jsonl.XXXXXXXX`` next to the output for good.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.batch import remove_stale_temp_files


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_rerun_removes_what_killed_runs_left_and_nothing_else(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    dead = tmp_path / f".out.jsonl.{_dead_pid()}.k3j4h5.tmp"  # killed while writing
    legacy = tmp_path / ".out.jsonl.ab12cd34"  # the name an older version used
    running = tmp_path / f".out.jsonl.{os.getppid()}.q9w8e7.tmp"  # a run still going
    notes = tmp_path / ".out.jsonl.notes"  # someone's file: not ours
    other = tmp_path / f".other.jsonl.{_dead_pid()}.zz.tmp"  # another output's
    for path in (dead, legacy, running, notes, other):
        path.write_text("partial")
    removed = remove_stale_temp_files(out)
    assert sorted(removed) == sorted([dead, legacy])
    assert not dead.exists() and not legacy.exists()
    assert running.exists() and notes.exists() and other.exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_removes_its_temporary_file(tmp_path: Path, sig: signal.Signals) -> None:
    src = tmp_path / "in.jsonl"
    rows = (
        {"id": i, "text": f"a long walk number {i} along the river at dusk " * 8}
        for i in range(20_000)
    )
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGUARD_")}
    proc = subprocess.Popen(
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
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(tmp_path.glob(".out.jsonl.*")):
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the run never started writing"
            time.sleep(0.05)
        time.sleep(0.3)  # well into the run
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, "the run was stopped, it must not report success"
    assert list(tmp_path.glob(".out.jsonl.*")) == [], err.decode()[-2000:]
    assert not out.exists()
    assert b"Traceback" not in err, err.decode()[-2000:]

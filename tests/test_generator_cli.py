"""``reelguard generate``: the developer CLI, driven through click with real backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import COMMANDS, main
from generator.encode import decode_mp4


def test_registered_and_help_says_no_moderation() -> None:
    assert "generate" in COMMANDS
    result = CliRunner().invoke(main, ["generate", "-h"])
    assert result.exit_code == 0
    assert "NO MODERATION" in result.output and "--prompt" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "big"], "is not WIDTHxHEIGHT"),
        (["--size", "255x256"], "width: must be an even number"),
        (["--seconds", "0"], "seconds: must be > 0"),
        (["--backend", "nope"], "'nope' is not one of"),
    ],
)
def test_bad_flags_explain_the_fix(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "x.mp4"
    result = CliRunner().invoke(main, ["generate", "--prompt", "a red circle", "--out", str(out),
                                       *args])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_unconfigured_remote_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REELGUARD_REMOTE_URL", raising=False)
    result = CliRunner().invoke(main, ["generate", "--prompt", "x", "--backend", "remote",
                                       "--out", str(tmp_path / "x.mp4")])  # fmt: skip
    assert result.exit_code == 1
    assert "Error: the remote backend needs REELGUARD_REMOTE_URL" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_generate_writes_a_playable_mp4_and_poster(tmp_path: Path) -> None:
    out = tmp_path / "clips" / "red.mp4"
    result = CliRunner().invoke(main, ["generate", "--prompt", "a crimson ball, and a dragon",
                                       "--seconds", "1.5", "--size", "96x64", "--seed", "3",
                                       "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "seed 3" in result.output
    assert "understood: crimson, ball; ignored: dragon" in result.output
    frames, fps = decode_mp4(out)
    assert frames.shape == (12, 64, 96, 3) and fps == 8.0
    assert out.with_suffix(".png").is_file()

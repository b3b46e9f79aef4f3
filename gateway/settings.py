"""Environment settings (prefix ``REELGUARD_``), kept apart from policy.

Policy (what to block) lives in YAML under ``policies/``; settings say where things are and how
the process runs. Every field can be set as ``REELGUARD_<FIELD>`` (upper case), and CLI flags
override them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


class Settings(BaseSettings):
    """Process settings. Unknown ``REELGUARD_*`` variables are ignored; bad values fail loudly."""

    model_config = SettingsConfigDict(env_prefix="REELGUARD_", extra="ignore", frozen=True)

    db: Path = Field(Path("var/reelguard.db"), description="SQLite database (jobs, keys, audit).")
    data_dir: Path = Field(Path("var/videos"), description="Video files: released/ and quarantine/.")
    policy: Path = Field(PACKAGE_POLICY, description="Base policy YAML file.")
    tenant_policy_dir: Path | None = Field(
        None, description="Folder of tenant overlays, one <tenant>.yaml each (extends the base)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_input_chars: int = Field(10_000, ge=1, description="Longest prompt accepted (characters).")
    max_input_items: int = Field(32, ge=1, description="Most prompts in one moderation request.")
    policy_reload_interval_s: float = Field(2.0, gt=0, description="How often to check policy files.")
    torch_threads: int = Field(1, ge=1, description="Intra-op threads for torch/onnx models.")


def get_settings() -> Settings:
    """Settings from the environment (a fresh read each call, so tests can monkeypatch env)."""
    return Settings()

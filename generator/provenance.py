"""C2PA provenance for generated MP4s (``c2pa-python``), signed offline with a key from settings.

Every video a worker encodes is signed in quarantine, before the release decision is applied,
so a released file always carries its manifest when signing is configured. The manifest says:

- ``c2pa.actions``: ``c2pa.created`` with the IPTC digital source type *trained algorithmic
  media* and the generator (backend and model id) as the software agent;
- ``org.reelguard.generation``: backend, model id, seed, and the remix source if any;
- ``org.reelguard.audit``: the job id (``reelguard audit show JOB_ID`` finds every record of it)
  and the policy version the frame audit decided under.

The key and certificate chain are PEM files (``REELGUARD_C2PA_KEY``, ``REELGUARD_C2PA_CERT``,
the signer's certificate first, then its issuers). Without them videos are released unsigned
and the worker says so at start-up; ``REELGUARD_C2PA_REQUIRED=true`` makes a signature
mandatory (a worker without a usable key refuses to start, and a signing failure withholds the
video). No time-stamp authority is contacted: signing works offline.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CLAIM_GENERATOR = "ReelGuard"


class ProvenanceError(RuntimeError):
    """Signing or reading a C2PA manifest failed; the message names the file and the cause."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a video's manifest states about it."""

    job_id: str
    policy_version: str
    backend: str
    model_id: str
    seed: int
    remixed_from: str | None = None


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A PEM private key and its certificate chain (signer first), ES256 (P-256) by default."""

    key_pem: bytes
    cert_pem: bytes
    alg: str = "es256"

    @classmethod
    def load(cls, key: Path, cert: Path) -> SigningKey:
        """Read both PEM files; :class:`ProvenanceError` names a file that cannot be read."""
        try:
            key_pem, cert_pem = key.read_bytes(), cert.read_bytes()
        except OSError as exc:
            raise ProvenanceError(
                f"{exc.filename}: cannot read the C2PA signing key or certificate "
                f"({exc.strerror}); check REELGUARD_C2PA_KEY and REELGUARD_C2PA_CERT"
            ) from None
        return cls(key_pem=key_pem, cert_pem=cert_pem, alg=_alg_of(key_pem, key))


def _alg_of(key_pem: bytes, path: Path) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(
            f"{path}: not an unencrypted PEM private key ({exc}); export it without a passphrase"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "es256", 384: "es384", 521: "es512"}.get(key.curve.key_size, "es256")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return "ps256"


def manifest_json(info: Provenance) -> str:
    """The manifest definition for :func:`sign_mp4`."""
    generation: dict[str, Any] = {
        "backend": info.backend,
        "model_id": info.model_id,
        "seed": info.seed,
    }
    if info.remixed_from:
        generation["remixed_from"] = info.remixed_from
    return json.dumps(
        {
            "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _version()}],
            "title": f"{info.job_id}.mp4",
            "format": "video/mp4",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {
                        "actions": [
                            {
                                "action": "c2pa.created",
                                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                                "softwareAgent": {"name": f"{info.backend}:{info.model_id}"},
                            }
                        ]
                    },
                },
                {"label": "org.reelguard.generation", "data": generation},
                {
                    "label": "org.reelguard.audit",
                    "data": {"job_id": info.job_id, "policy_version": info.policy_version},
                },
            ],
        }
    )


_LOCK = threading.Lock()


def sign_mp4(path: Path, info: Provenance, key: SigningKey) -> None:
    """Embed a signed manifest in the MP4 at ``path`` (replaced atomically; on any failure the
    original is left as it was and :class:`ProvenanceError` says why)."""
    import c2pa

    tmp = path.with_name(path.name + ".c2pa.tmp")
    try:
        signer_info = c2pa.C2paSignerInfo(
            alg=key.alg.encode(), sign_cert=key.cert_pem, private_key=key.key_pem, ta_url=None
        )
        with _LOCK:  # the native signer is not documented as thread-safe
            signer = c2pa.Signer.from_info(signer_info)
            with (
                c2pa.Builder(manifest_json(info)) as builder,
                open(path, "rb") as src,
                open(tmp, "w+b") as dst,
            ):
                builder.sign(signer, "video/mp4", src, dst)
                dst.flush()
                os.fsync(dst.fileno())
        os.replace(tmp, path)
    except Exception as exc:  # a C2paError, an OSError: the caller decides (fail closed or not)
        tmp.unlink(missing_ok=True)
        raise ProvenanceError(f"{path}: C2PA signing failed: {type(exc).__name__}: {exc}") from exc


def read_manifest(path: Path) -> dict[str, Any]:
    """The C2PA store of an MP4 as JSON (``active_manifest``, ``manifests``,
    ``validation_state``, ``validation_status``); :class:`ProvenanceError` when it has none."""
    import c2pa

    try:
        with open(path, "rb") as fh:
            reader = c2pa.Reader("video/mp4", fh)
            data: dict[str, Any] = json.loads(reader.json())
    except Exception as exc:
        raise ProvenanceError(f"{path}: no readable C2PA manifest ({exc})") from None
    return data


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("reelguard")
    except PackageNotFoundError:
        return "0"

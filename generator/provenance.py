"""C2PA provenance for generated MP4s (``c2pa-python``), signed offline with a key from settings.

Every video a worker encodes is signed in quarantine, before the release decision is applied,
so a released file always carries its manifest when signing is configured. The manifest says:

- ``c2pa.actions``: ``c2pa.created`` with the IPTC digital source type *trained algorithmic
  media* and the generator (backend and model id) as the software agent;
- ``org.reelguard.generation``: backend, model id, seed, the remix source if any, and every
  source (``sources``: relationship, video id, sha256 of the bytes listed as the ingredient);
- ``org.reelguard.audit``: the job id (``reelguard audit show JOB_ID`` finds every record of it)
  and the policy version the frame audit decided under.

The key and certificate chain are PEM files (``REELGUARD_C2PA_KEY``, ``REELGUARD_C2PA_CERT``,
the signer's certificate first, then its issuers). Without them videos are released unsigned
and the worker says so at start-up; ``REELGUARD_C2PA_REQUIRED=true`` makes a signature
mandatory (a worker without a usable key refuses to start, and a signing failure withholds the
video). No time-stamp authority is contacted: signing works offline.

A video made from another one lists it as an ingredient (:class:`Ingredient`): an extension
opens with its source's frames, so the source is its ``parentOf`` ingredient and the actions are
``c2pa.opened`` then ``c2pa.edited`` (*composite with trained algorithmic media*); a remix, an
edit or a character video only feeds the model, so the source is ``inputTo`` and the action
stays ``c2pa.created``. A released source's own signed MP4 is the ingredient (its manifest is
carried along, so the chain of provenance stays readable); an upload's original bytes are.
"""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
CLAIM_GENERATOR = "ReelGuard"


class ProvenanceError(RuntimeError):
    """Signing or reading a C2PA manifest failed; the message names the file and the cause."""


Relationship = Literal["parentOf", "inputTo"]
"""How a source is related to the video (C2PA ingredient relationships; see the module doc)."""


@dataclass(frozen=True, slots=True)
class Ingredient:
    """A source a video was made from: a released video (``video_id``) or an upload.

    ``data`` is the source file as it was used (a released MP4 with its own manifest, or the
    uploaded bytes); ``None`` when it is no longer stored (its owner deleted it), in which
    case the ingredient is listed by id alone, without a hash of its content.
    """

    relationship: Relationship
    title: str
    media_type: str
    video_id: str | None = None
    sha256: str | None = None
    data: bytes | None = field(default=None, repr=False)

    @property
    def instance_id(self) -> str:
        """``reelguard:<video id>`` for a released video, ``sha256:<hex>`` for an upload."""
        return f"reelguard:{self.video_id}" if self.video_id else f"sha256:{self.sha256}"

    def definition(self, label: str) -> dict[str, Any]:
        """The ingredient's C2PA definition (``label`` links it to the actions)."""
        out: dict[str, Any] = {
            "title": self.title,
            "format": self.media_type,
            "relationship": self.relationship,
            "instance_id": self.instance_id,
            "label": label,
        }
        if self.sha256:
            out["description"] = f"sha256:{self.sha256}"
        return out

    def summary(self) -> dict[str, Any]:
        """What ``org.reelguard.generation.sources`` says of it."""
        return {
            "relationship": self.relationship,
            "video_id": self.video_id,
            "sha256": self.sha256,
            "media_type": self.media_type,
        }


@dataclass(frozen=True, slots=True)
class Provenance:
    """What a video's manifest states about it."""

    job_id: str
    policy_version: str
    backend: str
    model_id: str
    seed: int
    remixed_from: str | None = None
    ingredients: tuple[Ingredient, ...] = ()


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
    if info.ingredients:
        generation["sources"] = [i.summary() for i in info.ingredients]
    return json.dumps(
        {
            "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": _version()}],
            "title": f"{info.job_id}.mp4",
            "format": "video/mp4",
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": _actions(info)}},
                {"label": "org.reelguard.generation", "data": generation},
                {
                    "label": "org.reelguard.audit",
                    "data": {"job_id": info.job_id, "policy_version": info.policy_version},
                },
            ],
        }
    )


def _label(index: int) -> str:
    return f"source-{index}"


def _actions(info: Provenance) -> list[dict[str, Any]]:
    """``c2pa.created`` for a generated video (its ``inputTo`` sources named); for one that
    opens with a source's frames (an extension), ``c2pa.opened`` on that ``parentOf`` source,
    then ``c2pa.edited`` for the generated rest."""
    agent = {"name": f"{info.backend}:{info.model_id}"}
    parents = [_label(i) for i, g in enumerate(info.ingredients) if g.relationship == "parentOf"]
    inputs = [_label(i) for i, g in enumerate(info.ingredients) if g.relationship == "inputTo"]
    generated: dict[str, Any] = {"softwareAgent": agent}
    if inputs:
        generated["parameters"] = {"ingredientIds": inputs}
    if not parents:
        return [
            {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, **generated}
        ]
    return [
        {"action": "c2pa.opened", "parameters": {"ingredientIds": parents[:1]}},
        {
            "action": "c2pa.edited",
            "digitalSourceType": COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
            **generated,
        },
    ]


def _definition(info: Provenance) -> str:
    """The manifest for the builder: :func:`manifest_json` plus the sources that are no longer
    stored (listed by id; those with bytes are added with :meth:`c2pa.Builder.add_ingredient`,
    which hashes them and carries their own manifest along)."""
    manifest = json.loads(manifest_json(info))
    gone = [g.definition(_label(i)) for i, g in enumerate(info.ingredients) if g.data is None]
    if gone:
        manifest["ingredients"] = gone
    return json.dumps(manifest)


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
                c2pa.Builder(_definition(info)) as builder,
                open(path, "rb") as src,
                open(tmp, "w+b") as dst,
            ):
                for i, source in enumerate(info.ingredients):
                    if source.data is not None:
                        builder.add_ingredient(
                            json.dumps(source.definition(_label(i))),
                            source.media_type,
                            io.BytesIO(source.data),
                        )
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

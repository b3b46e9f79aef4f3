"""C2PA provenance on released videos: signed offline with a test CA made here (``cryptography``),
read back with ``c2pa-python``; a required signature that fails withholds the video."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from litestar.testing import TestClient
from test_videos_support import PatternBackend, make_settings, run_all, runner

from config.settings import Settings
from gateway.app import create_app
from gateway.cli import main
from gateway.keys import KeyStore
from gateway.worker.components import load_signing_key
from generator.provenance import (
    TRAINED_ALGORITHMIC_MEDIA,
    ProvenanceError,
    read_manifest,
)

pytestmark = pytest.mark.slow


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ReelGuard test"),
        ]
    )


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_test_ca(folder: Path) -> tuple[Path, Path]:
    """A throw-away CA and a signing certificate it issued (P-256): ``(key.pem, chain.pem)``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("ReelGuard Test CA"))
        .issuer_name(_name("ReelGuard Test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("ReelGuard signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_path, chain_path = folder / "c2pa-key.pem", folder / "c2pa-chain.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    chain_path.write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    return key_path, chain_path


def make_video(settings: Settings, classifiers: Mapping[str, Any]) -> tuple[str, httpx.Response]:
    """Create a video through the app, run it with an in-process worker, then download it."""
    keys = KeyStore(settings.db)
    auth = {"Authorization": f"Bearer {keys.create('acme').token}"}
    keys.close()
    with TestClient(create_app(settings, classifiers=classifiers)) as client:
        created = client.post(
            "/v1/videos",
            headers=auth,
            json={"prompt": "a red kite over a calm sea", "seconds": "1", "size": "64x64"},
        )
        assert created.status_code == 202, created.text
        video_id = created.json()["id"]
        run_all(runner(settings, backend=PatternBackend()))
        video = client.get(f"/v1/videos/{video_id}", headers=auth).json()
        return video_id, client.get(f"/v1/videos/{video_id}/content", headers=auth) if video[
            "status"
        ] == "completed" else client.get(f"/v1/videos/{video_id}", headers=auth)


def test_a_released_video_carries_a_signed_manifest(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    key, chain = make_test_ca(tmp_path)
    settings = make_settings(tmp_path, c2pa_key=key, c2pa_cert=chain)
    video_id, content = make_video(settings, text_classifiers)
    assert content.status_code == 200 and content.headers["content-type"] == "video/mp4"
    path = tmp_path / "got.mp4"
    path.write_bytes(content.content)

    store = read_manifest(path)
    manifest = store["manifests"][store["active_manifest"]]
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    (created,) = assertions["c2pa.actions.v2"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert created["softwareAgent"]["name"] == "pattern:test-pattern"
    assert assertions["org.reelguard.audit"]["job_id"] == video_id
    assert len(assertions["org.reelguard.audit"]["policy_version"]) >= 8
    assert assertions["org.reelguard.generation"]["backend"] == "pattern"
    assert manifest["signature_info"]["common_name"] == "ReelGuard signer"
    # The hashes and the signature hold; only the test CA is (rightly) not a trusted root.
    assert store["validation_state"] in ("Valid", "Trusted")
    assert {s["code"] for s in store.get("validation_status", [])} <= {
        "signingCredential.untrusted"
    }

    shown = CliRunner().invoke(main, ["provenance", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "state:      Valid (signer not on the trust list)" in shown.output
    assert "trainedAlgorithmicMedia" in shown.output and video_id in shown.output

    # A cut or re-encoded copy no longer matches its manifest.
    data = bytearray(content.content)
    middle = data.find(b"mdat") + 64
    data[middle] ^= 0xFF
    path.write_bytes(bytes(data))
    assert read_manifest(path)["validation_state"] == "Invalid"
    shown = CliRunner().invoke(main, ["provenance", str(path)])
    assert shown.exit_code == 1 and "problem:" in shown.output, shown.output


def test_without_a_key_videos_are_released_unsigned(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    settings = make_settings(tmp_path)
    _, content = make_video(settings, text_classifiers)
    assert content.status_code == 200
    path = tmp_path / "got.mp4"
    path.write_bytes(content.content)
    with pytest.raises(ProvenanceError):
        read_manifest(path)
    shown = CliRunner().invoke(main, ["provenance", str(path)])
    assert shown.exit_code == 1 and "it was not signed" in shown.output


def test_a_required_signature_that_fails_withholds_the_video(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    key, chain = make_test_ca(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    wrong_key, _ = make_test_ca(other)  # a key that does not match the certificate
    settings = make_settings(tmp_path, c2pa_key=wrong_key, c2pa_cert=chain, c2pa_required=True)
    video_id, answer = make_video(settings, text_classifiers)
    video = answer.json()
    assert video["status"] == "failed", video
    assert video["error"]["code"] == "provenance_failed"
    assert not (settings.data_dir / "released" / f"{video_id}.mp4").exists()
    assert key.is_file()


def test_serve_and_worker_refuse_to_start_on_a_required_key_they_cannot_use(
    tmp_path: Path,
) -> None:
    import click

    from gateway.serve import signing_key_or_explain

    with pytest.raises(click.ClickException, match="REELGUARD_C2PA_KEY"):
        signing_key_or_explain(make_settings(tmp_path, c2pa_required=True))
    signing_key_or_explain(make_settings(tmp_path))  # no key, not required: starts, unsigned


def test_a_required_signature_without_a_key_stops_the_worker(tmp_path: Path) -> None:
    with pytest.raises(ProvenanceError, match="REELGUARD_C2PA_REQUIRED"):
        load_signing_key(make_settings(tmp_path, c2pa_required=True))
    with pytest.raises(ProvenanceError, match="cannot read"):
        load_signing_key(
            make_settings(
                tmp_path, c2pa_required=True, c2pa_key=tmp_path / "no.pem", c2pa_cert=tmp_path
            )
        )

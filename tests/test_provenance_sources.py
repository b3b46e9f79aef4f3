"""A video made from another one lists it as a C2PA ingredient: remixes, extensions and edits
of released videos (the source's own signed MP4, its manifest carried along) and of uploaded
videos (the upload's original bytes), read back with ``c2pa-python`` and ``reelguard
provenance``. Through the official ``openai`` SDK against a real server, a real in-process
worker and the embedded generator."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from test_provenance import make_test_ca
from test_videos_extend import clip_of, extend_id, mp4, released
from test_videos_inputs import Env, landscape_pixels, served_env
from test_videos_support import DEPLOYMENTS

from gateway.cli import main
from generator.encode import encode_mp4
from generator.provenance import (
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    Ingredient,
    Provenance,
    SigningKey,
    read_manifest,
    sign_mp4,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning"),
]


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    text_classifiers: Mapping[str, Any],
) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("sources")
    with served_env(request, tmp, text_classifiers, overlays=False, c2pa=True) as env:
        yield env


def download(env: Env, video_id: str, tmp: Path) -> tuple[Path, bytes]:
    done = env.sdk().videos.retrieve(video_id)
    assert done.status == "completed", done
    data = env.sdk().videos.download_content(video_id).read()
    path = tmp / f"{video_id}.mp4"
    path.write_bytes(data)
    return path, data


def manifest_of(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(store, active manifest, assertions by label)``; the manifest must hold."""
    store = read_manifest(path)
    assert store["validation_state"] in ("Valid", "Trusted"), store.get("validation_status")
    manifest = store["manifests"][store["active_manifest"]]
    return store, manifest, {a["label"]: a["data"] for a in manifest["assertions"]}


def test_a_remix_lists_its_released_source_with_its_manifest(env: Env, tmp_path: Path) -> None:
    source = released(env)
    _, source_bytes = download(env, source, tmp_path)
    source_manifest = read_manifest(tmp_path / f"{source}.mp4")["active_manifest"]
    remix = env.sdk().videos.remix(source, prompt="a blue circle moving left")
    env.run_jobs()
    path, _ = download(env, remix.id, tmp_path)

    store, manifest, assertions = manifest_of(path)
    (ingredient,) = manifest["ingredients"]
    assert ingredient["relationship"] == "inputTo"
    assert ingredient["instance_id"] == f"reelguard:{source}"
    digest = hashlib.sha256(source_bytes).hexdigest()
    assert ingredient["description"] == f"sha256:{digest}"
    # The source's own signed manifest travels with it: the chain back to the first video.
    assert ingredient["active_manifest"] == source_manifest
    assert store["manifests"][source_manifest]["claim_generator_info"][0]["name"] == "ReelGuard"
    (created,) = assertions["c2pa.actions.v2"]["actions"]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    generation = assertions["org.reelguard.generation"]
    assert generation["remixed_from"] == source
    assert generation["sources"] == [
        {"relationship": "inputTo", "video_id": source, "sha256": digest, "media_type": "video/mp4"}
    ]

    shown = CliRunner().invoke(main, ["provenance", str(path)])
    assert shown.exit_code == 0, shown.output
    line = next(x for x in shown.output.splitlines() if x.strip().startswith("ingredient:"))
    assert f"inputTo {source}.mp4 (reelguard:{source}; sha256:{digest}" in line
    assert f"its manifest {source_manifest} by ReelGuard" in line


def test_an_extension_opens_its_source_as_parent(env: Env, tmp_path: Path) -> None:
    scene = "a red circle moving right on a blue background"
    source = released(env, prompt=scene)
    _, source_bytes = download(env, source, tmp_path)
    ext = extend_id(env, source, prompt=scene, seconds="1", seed=2)
    env.run_jobs()
    path, _ = download(env, ext.id, tmp_path)

    _, manifest, assertions = manifest_of(path)
    (ingredient,) = manifest["ingredients"]
    assert ingredient["relationship"] == "parentOf"
    assert ingredient["instance_id"] == f"reelguard:{source}"
    assert ingredient["description"] == f"sha256:{hashlib.sha256(source_bytes).hexdigest()}"
    opened, edited = assertions["c2pa.actions.v2"]["actions"]
    assert opened["action"] == "c2pa.opened" and opened["parameters"]["ingredients"]
    assert edited["action"] == "c2pa.edited"
    assert edited["digitalSourceType"] == COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
    shown = CliRunner().invoke(main, ["provenance", str(path)])
    assert shown.exit_code == 0 and f"ingredient: parentOf {source}.mp4" in shown.output


def test_an_uploaded_source_is_listed_by_its_bytes(env: Env, tmp_path: Path) -> None:
    data = mp4(clip_of(landscape_pixels(64, 64), 8), 8.0, tmp_path)
    edit = env.sdk().videos.edit(
        prompt="a yellow square moving left", video=("clip.mp4", data, "video/mp4")
    )
    env.run_jobs()
    path, _ = download(env, edit.id, tmp_path)

    _, manifest, assertions = manifest_of(path)
    (ingredient,) = manifest["ingredients"]
    digest = hashlib.sha256(data).hexdigest()
    assert ingredient["relationship"] == "inputTo"
    assert ingredient["instance_id"] == f"sha256:{digest}"
    assert ingredient["format"] == "video/mp4" and "active_manifest" not in ingredient
    assert assertions["org.reelguard.generation"]["sources"][0]["sha256"] == digest


def test_a_source_no_longer_stored_is_listed_by_id(tmp_path: Path) -> None:
    key, chain = make_test_ca(tmp_path)
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    path = encode_mp4(frames, 8.0, tmp_path / "v.mp4")
    gone = Ingredient("inputTo", "video_gone.mp4", "video/mp4", video_id="video_gone")
    sign_mp4(
        path,
        Provenance("video_new", "pv", "pattern", "m", 1, ingredients=(gone,)),
        SigningKey.load(key, chain),
    )
    _, manifest, assertions = manifest_of(path)
    (ingredient,) = manifest["ingredients"]
    assert ingredient["instance_id"] == "reelguard:video_gone"
    assert "description" not in ingredient
    assert assertions["org.reelguard.generation"]["sources"][0]["sha256"] is None
    shown = CliRunner().invoke(main, ["provenance", str(path)])
    assert "no content hash (no longer stored)" in shown.output

"""CLIP concept classifier, on a tiny open_clip model whose checkpoint the test builds.

There are no real CLIP weights offline, so the model is randomly initialised: these tests check
the code path (loading a local checkpoint, concept embeddings, the SD-style margin score, frame
evidence, fail-closed loading), not what real CLIP recognises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifiers.base import FrameClassifier, SampledFrame
from classifiers.frame.clip import (
    ClipConceptClassifier,
    ClipModel,
    ClipSpec,
    load_clip_model,
    margin_to_score,
)
from classifiers.frame.errors import FrameModelUnavailable
from config.settings import PACKAGE_POLICY, Settings
from gateway.frame_audit import FrameClassifierCache, audit_frames
from policies.decision import Action
from policies.loader import load_policy
from policies.resolved import ResolvedPolicy
from policies.schema import Policy

pytestmark = pytest.mark.slow

TINY = "reelguard-test-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipSpec:
    """A seeded, randomly initialised tiny open_clip model saved as a local checkpoint."""
    import open_clip
    import torch

    root = tmp_path_factory.mktemp("clip")
    config = root / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    checkpoint = root / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return ClipSpec(model_name=TINY, checkpoint=checkpoint, model_config=config)


def tiny_settings(spec: ClipSpec, tmp_path: Path) -> Settings:
    return Settings(
        db=tmp_path / "x.db",
        clip_model=spec.model_name,
        clip_checkpoint=spec.checkpoint,
        clip_model_config=spec.model_config,
    )


def policy_with(**frame_audit: Any) -> ResolvedPolicy:
    """The default policy, CLIP as the only frame classifier, ``frame_audit`` fields replaced."""
    data = load_policy(PACKAGE_POLICY).policy.canonical()
    data["classifiers"]["frame"] = ["clip"]
    data["frame_audit"].update(frame_audit)
    return ResolvedPolicy.build(Policy.model_validate(data))


def clip_frames(n: int = 6, fps: float = 8.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (n, 48, 64, 3), dtype=np.uint8)


def test_concepts_from_the_policy_give_verdicts_with_frame_evidence(tiny_clip: ClipSpec) -> None:
    policy = load_policy(PACKAGE_POLICY)
    concepts = policy.policy.frame_audit.concepts
    clf = ClipConceptClassifier(load_clip_model(tiny_clip), concepts)
    assert isinstance(clf, FrameClassifier)
    assert set(clf.categories) == {c for c, items in concepts.items() if items}
    assert (
        clf.model_version
        == "sha256:"
        + __import__("hashlib")
        .sha256(
            tiny_clip.checkpoint.read_bytes()  # type: ignore[union-attr]
        )
        .hexdigest()
    )
    frames = [SampledFrame(i * 2, i * 2 / 8.0, im) for i, im in enumerate(clip_frames(3))]
    verdicts = clf.classify(frames)
    assert len(verdicts) == len(frames) * len(clf.categories)
    prompts = {c.prompt for items in concepts.values() for c in items}
    for v in verdicts:
        (e,) = v.evidence
        assert e.timestamp_s == e.frame_index / 8.0  # type: ignore[operator]
        assert 0.0 <= v.score <= 1.0
        assert e.detail is not None and any(repr(p) in e.detail for p in prompts)


def test_score_is_the_sd_style_margin_over_the_best_concept(tiny_clip: ClipSpec) -> None:
    model = load_clip_model(tiny_clip)
    frames = [SampledFrame(i, i / 8.0, im) for i, im in enumerate(clip_frames(4))]
    prompts = ["a cartoon mouse", "a yellow electric mouse"]
    cosine = model.encode_images(frames) @ model.encode_texts(prompts).T
    # Thresholds straddling the real similarities, so some frames are over and some under.
    thresholds = [float(np.median(cosine[:, 0])), float(np.median(cosine[:, 1])) + 0.01]

    class Concept:
        def __init__(self, prompt: str, threshold: float) -> None:
            self.prompt, self.threshold = prompt, threshold

    clf = ClipConceptClassifier(
        model, {"ip": [Concept(p, t) for p, t in zip(prompts, thresholds, strict=True)]}
    )
    verdicts = clf.classify(frames)
    margins = cosine - np.asarray(thresholds)[None, :]
    expected = margin_to_score(margins.max(axis=1))
    assert [v.score for v in verdicts] == pytest.approx(list(expected), abs=1e-5)
    assert any(v.score > 0.5 for v in verdicts) and any(v.score < 0.5 for v in verdicts)
    best = margins.argmax(axis=1)
    for v, b in zip(verdicts, best, strict=True):
        assert repr(prompts[b]) in (v.evidence[0].detail or "")


@pytest.mark.parametrize(
    ("margin", "score"), [(0.0, 0.5), (0.03, 0.9526), (-0.03, 0.0474), (1.0, 1.0), (-1.0, 0.0)]
)
def test_margin_mapping(margin: float, score: float) -> None:
    assert float(margin_to_score(margin)) == pytest.approx(score, abs=1e-4)


CANDIDATES = [
    "a famous cartoon mouse",
    "a yellow electric mouse",
    "a superhero in a red cape",
    "a blue hedgehog",
    "a plumber in red overalls",
    "a snowman princess",
    "a boy wizard with glasses",
    "a space knight with a laser sword",
]


def test_audit_with_clip_blocks_on_concepts_and_allows_below_them(
    tiny_clip: ClipSpec, tmp_path: Path
) -> None:
    cache = FrameClassifierCache(tiny_settings(tiny_clip, tmp_path))
    model = load_clip_model(tiny_clip)
    # One picture repeated: every sampled frame has the same similarity to a prompt, so the
    # thresholds below put all of them just over, or just under, the concept.
    frames = np.repeat(clip_frames(1), 8, axis=0)
    cosine = (
        model.encode_images([SampledFrame(0, 0.0, frames[0])]) @ model.encode_texts(CANDIDATES).T
    )
    best = int(cosine[0].argmax())
    prompt, similarity = CANDIDATES[best], float(cosine[0, best])
    assert similarity > 0.05, "the seeded tiny model should give one clearly positive cosine"

    over = policy_with(concepts={"ip": [{"prompt": prompt, "threshold": similarity - 0.03}]})
    result = audit_frames(frames, 8.0, over, cache(over), timeout_s=60)
    assert result.decision.action is Action.BLOCK
    (reason,) = result.decision.reasons
    assert (reason.category, reason.classifier, reason.source) == ("ip", "clip", "classifier")
    assert reason.score == pytest.approx(float(margin_to_score(0.03)), abs=1e-3)
    assert [e.frame_index for e in reason.evidence] == [0, 4, 7]  # sampled: 0, 4, last
    assert all(prompt in (e.detail or "") for e in reason.evidence)
    assert result.model_versions["clip"].startswith(f"open_clip/{TINY}@sha256:")

    under = policy_with(concepts={"ip": [{"prompt": prompt, "threshold": similarity + 0.05}]})
    result = audit_frames(frames, 8.0, under, cache(under), timeout_s=60)
    assert result.decision.action is Action.ALLOW, result.decision.reasons
    assert result.decision.category_scores["ip"] < 0.01


def test_concept_embeddings_are_built_once_per_concept_set(
    tiny_clip: ClipSpec, tmp_path: Path
) -> None:
    cache = FrameClassifierCache(tiny_settings(tiny_clip, tmp_path))
    a = policy_with(concepts={"ip": [{"prompt": "a cartoon mouse", "threshold": 0.3}]})
    b = policy_with(
        concepts={"ip": [{"prompt": "a cartoon mouse", "threshold": 0.3}]}, timeout_s=30
    )
    c = policy_with(concepts={"ip": [{"prompt": "a cartoon duck", "threshold": 0.3}]})
    assert a.version != b.version
    (first,) = cache(a)
    (again,) = cache(b)  # another policy version, same concepts: same instance
    (other,) = cache(c)
    assert first is again
    assert other is not first
    assert other.categories == ("ip",)  # type: ignore[attr-defined]


def test_missing_checkpoint_withholds_and_says_how_to_fix(
    tiny_clip: ClipSpec, tmp_path: Path
) -> None:
    settings = tiny_settings(tiny_clip, tmp_path).model_copy(
        update={"clip_checkpoint": tmp_path / "missing.pt"}
    )
    policy = policy_with()
    (clf,) = FrameClassifierCache(settings)(policy)
    result = audit_frames(clip_frames(4), 8.0, policy, [clf], timeout_s=60)
    assert result.decision.action is Action.BLOCK
    errors = [r for r in result.decision.reasons if r.source == "error"]
    assert {r.category for r in errors} == set(policy.policy.frame_audit.concepts)
    assert all("REELGUARD_CLIP_CHECKPOINT" in r.message for r in errors)


def test_no_weights_configured_is_an_error_not_a_silent_skip() -> None:
    with pytest.raises(FrameModelUnavailable, match="no weights configured"):
        ClipModel(ClipSpec(model_name="ViT-B-32"))


def test_checkpoint_for_another_model_is_refused(tiny_clip: ClipSpec, tmp_path: Path) -> None:
    wider = tmp_path / f"{TINY}-wide.json"
    wider.write_text(json.dumps({**TINY_CONFIG, "embed_dim": 48}))
    wrong = ClipSpec(model_name=wider.stem, checkpoint=tiny_clip.checkpoint, model_config=wider)
    with pytest.raises(FrameModelUnavailable, match=f"cannot load {wider.stem}"):
        ClipModel(wrong)

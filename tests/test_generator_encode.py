"""MP4 encoding and posters, checked by decoding the files back with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from generator.encode import EncodeError, decode_mp4, encode_mp4, write_thumbnail


def moving_square(t: int = 16, h: int = 64, w: int = 64) -> np.ndarray:
    frames = np.full((t, h, w, 3), (40, 90, 225), dtype=np.uint8)
    for i in range(t):
        frames[i, 20:36, 2 * i : 2 * i + 16] = (240, 220, 50)
    return frames


def test_h264_yuv420p_faststart_roundtrip(tmp_path: Path) -> None:
    frames = moving_square()
    path = encode_mp4(frames, 8, tmp_path / "out" / "clip.mp4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == 8.0
    data = path.read_bytes()
    # faststart: the index (moov) comes before the media (mdat), so browsers start playing early.
    assert 0 < data.index(b"moov") < data.index(b"mdat")
    decoded, fps = decode_mp4(path)
    assert decoded.shape == frames.shape and fps == 8.0
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 4.0
    assert not list(tmp_path.glob("out/.*partial"))


def test_decode_from_bytes(tmp_path: Path) -> None:
    path = encode_mp4(moving_square(t=5), 24, tmp_path / "a.mp4")
    frames, fps = decode_mp4(path.read_bytes())
    assert frames.shape == (5, 64, 64, 3) and fps == 24.0


@pytest.mark.parametrize(("h", "w"), [(63, 64), (64, 65), (33, 17)])
def test_odd_sides_are_padded_to_even(tmp_path: Path, h: int, w: int) -> None:
    frames, _ = decode_mp4(encode_mp4(moving_square(t=3, h=h, w=w), 8, tmp_path / "odd.mp4"))
    assert frames.shape == (3, h + h % 2, w + w % 2, 3)


def test_fractional_fps(tmp_path: Path) -> None:
    _, fps = decode_mp4(encode_mp4(moving_square(t=4), 29.97, tmp_path / "ntsc.mp4"))
    assert fps == pytest.approx(29.97, abs=0.01)


@pytest.mark.parametrize(
    ("frames", "fps", "message"),
    [
        (np.zeros((4, 8, 8, 3), dtype=np.float32), 8, "uint8"),
        (np.zeros((4, 8, 8), dtype=np.uint8), 8, "uint8"),
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), 8, "at least one frame"),
        (np.zeros((2, 8, 8, 3), dtype=np.uint8), 0, "fps must be > 0"),
    ],
)
def test_bad_input(tmp_path: Path, frames: np.ndarray, fps: float, message: str) -> None:
    with pytest.raises(EncodeError, match=message):
        encode_mp4(frames, fps, tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


def test_decode_garbage_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="not a decodable video"):
        decode_mp4(b"\x00\x01 definitely not a video")


@pytest.mark.parametrize(("name", "fmt"), [("poster.jpg", "JPEG"), ("poster.png", "PNG")])
def test_thumbnail(tmp_path: Path, name: str, fmt: str) -> None:
    frame = moving_square()[8]
    path = write_thumbnail(frame, tmp_path / name)
    with Image.open(path) as image:
        assert image.format == fmt
        assert image.size == (256, 256)  # small frames are scaled up for a usable poster
        centre = np.asarray(image.convert("RGB"))[112, 96]
    assert np.abs(centre.astype(int) - (240, 220, 50)).max() < 12


def test_large_thumbnail_is_shrunk(tmp_path: Path) -> None:
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    with Image.open(write_thumbnail(frame, tmp_path / "big.png")) as image:
        assert max(image.size) == 512

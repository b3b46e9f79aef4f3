"""``reelguard generate``: run a video backend directly (a developer tool, no moderation)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import click

from config.settings import get_settings
from generator.base import BackendError, InvalidVideoRequest, VideoRequest
from generator.registry import BACKENDS, get_backend

_SIZE = re.compile(r"^(\d+)x(\d+)$")


def _parse_size(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    match = _SIZE.match(value.strip().lower())
    if not match:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 256x256")
    return int(match.group(1)), int(match.group(2))


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--prompt", required=True, help="What to generate.")
@click.option("--seconds", type=float, default=2.0, show_default=True, help="Clip length.")
@click.option(
    "--size", default="256x256", show_default=True, callback=_parse_size, help="WIDTHxHEIGHT."
)
@click.option("--seed", type=int, default=None, help="Seed (default: random, printed).")
@click.option("--fps", type=int, default=None, help="Frame rate (default: the backend's).")
@click.option(
    "--backend",
    type=click.Choice(sorted(BACKENDS)),
    default=None,
    help="Backend [default: REELGUARD_GENERATOR_BACKEND or embedded].",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="MP4 file to write; a poster PNG is written next to it.",
)
def generate(
    prompt: str,
    seconds: float,
    size: tuple[int, int],
    seed: int | None,
    fps: int | None,
    backend: str | None,
    out: Path,
) -> None:
    """Generate a video straight from a backend. DEVELOPER TOOL: NO MODERATION.

    This command skips the prompt checks and the frame audit that the gateway applies to every
    request; use it to try backends, never to serve users. Example:

        reelguard generate --prompt "a red circle moving left on a blue background" --out a.mp4
    """
    from generator.encode import EncodeError, encode_mp4, write_thumbnail

    width, height = size
    request = VideoRequest(prompt, seconds, width, height, seed=seed, fps=fps)
    try:
        chosen = get_backend(get_settings(), backend)
        chosen.check_inputs(request)
        started = time.perf_counter()
        with click.progressbar(length=100, label=chosen.name, file=sys.stderr) as bar:
            done = [0]

            def progress(fraction: float) -> None:
                step = int(100 * min(max(fraction, 0.0), 1.0)) - done[0]
                if step > 0:
                    bar.update(step)
                    done[0] += step

            output = chosen.generate(request, progress)
        elapsed = time.perf_counter() - started
        encode_mp4(output.frames, output.fps, out)
        poster = write_thumbnail(output.frames[len(output.frames) // 2], out.with_suffix(".png"))
    except InvalidVideoRequest as exc:
        hint = "--size" if exc.field in {"width", "height"} else f"--{exc.field}"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    except (BackendError, EncodeError, KeyError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    t, h, w, _ = output.frames.shape
    click.echo(
        f"Wrote {out} ({t} frames {w}x{h} at {output.fps:g} fps, {elapsed:.1f} s) and {poster}; "
        f"backend {output.backend} model {output.model_id} seed {output.seed}"
    )
    if output.understood or output.ignored:
        click.echo(
            f"understood: {', '.join(output.understood) or '-'}; "
            f"ignored: {', '.join(output.ignored) or '-'}"
        )

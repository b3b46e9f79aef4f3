"""How the diffusers backend serves a :class:`~generator.base.Conditioning`, per family.

Only the pipelines that were trained to take it get it:

* **LTX-Video** (``LTXConditionPipeline``, built from the loaded ``LTXPipeline``'s components):
  frame conditioning at frame 0. A start image is a one-frame condition; an extension
  conditions on the source's last second (the largest ``8k+1`` frames that fit) and keeps only
  the frames after it, so the output opens with the source's own frames, not a VAE
  re-encoding of them; an edit conditions on the whole source at ``1 - strength``, which the
  pipeline treats as those tokens already denoised down to noise level ``strength``
  (SDEdit per token).
* **Image-to-video** (``WanImageToVideoPipeline``, ``CogVideoXImageToVideoPipeline``): an image
  is what they start from, and they need one: a start image, or for an extension the source's
  last frame (the pipeline's first frame, a re-encoding of it, is dropped, so the output opens
  with the source's own frames). One frame carries the scene and the object's position, not
  its motion: the prompt has to say how it moves on.

A kind a family does not list in :data:`~generator.diffusers_backend.FAMILIES` is refused by
``check_inputs`` (400 ``unsupported-input`` at the gateway, before any job exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from generator.base import InvalidVideoRequest, VideoRequest

if TYPE_CHECKING:
    from generator.diffusers_backend import PipelineFamily

CONTEXT_SECONDS = 1.0
"""How much of the end of a source an extension conditions on (rounded down to k*t+1 frames)."""


@dataclass(frozen=True, slots=True)
class FramePlan:
    """How many frames the pipeline makes for a request and which of them are output.

    The pipeline makes ``num_frames`` (its ``k*t+1`` rule) at ``fps``; the output is ``keep``
    (an extension's source, exactly) followed by generated frames ``skip`` to
    ``skip + new``.
    """

    num_frames: int
    fps: float
    skip: int = 0
    new: int = 0
    keep: npt.NDArray[np.uint8] | None = field(default=None, repr=False)

    def finish(self, generated: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The output frames from the pipeline's ``generated`` frames."""
        made = generated[self.skip : self.skip + self.new]
        return made if self.keep is None else np.concatenate([self.keep, made])


def round_up(frames: int, k: int) -> int:
    """The smallest ``k*n+1`` that is at least ``frames``."""
    return max(1, -(-(frames - 1) // k) * k + 1)


def round_down(frames: int, k: int) -> int:
    """The largest ``k*n+1`` that is at most ``frames`` (at least 1)."""
    return max(1, (frames - 1) // k * k + 1)


def plan_frames(family: PipelineFamily, temporal: int, request: VideoRequest) -> FramePlan:
    """The :class:`FramePlan` for ``request``; :class:`InvalidVideoRequest` naming the field
    when the family cannot make it in one call (too many frames, or not ``k*t+1``)."""
    cond = request.conditioning
    if cond is None or cond.kind == "start_image":
        fps = float(request.fps or family.fps)
        frames = max(1, round(request.seconds * fps))
        if (frames - 1) % temporal or frames > family.max_frames:
            lower = round_down(frames, temporal)
            options = [n for n in (lower, lower + temporal) if n <= family.max_frames]
            hint = " or ".join(f"{n / fps:.4g} s ({n} frames)" for n in options or [lower])
            raise InvalidVideoRequest(
                "seconds",
                f"{family.name} makes {temporal}k+1 frames, at most {family.max_frames}; "
                f"{request.seconds:g} s at {fps:g} fps is {frames} frames (try {hint})",
            )
        return FramePlan(frames, fps, new=frames)
    assert cond.fps is not None
    fps = cond.fps
    if cond.keep_frames is not None:
        keep = cond.keep_frames
        new = round(request.seconds * fps) - len(keep)
        if new < 1:
            raise InvalidVideoRequest("seconds", f"the new part is under one frame at {fps:g} fps")
        if family.needs_image:
            context = 1  # the last frame, as the image the model starts from
        else:
            context = round_down(min(len(keep), round(CONTEXT_SECONDS * fps) + 1), temporal)
        frames = round_up(context + new, temporal)
        if frames > family.max_frames:
            most = (round_down(family.max_frames, temporal) - context) / fps
            raise InvalidVideoRequest(
                "seconds",
                f"{family.name} extends by at most {most:.3g} s at {fps:g} fps in one call "
                f"({family.max_frames} frames including {context} of context); extend again "
                "to go on",
            )
        return FramePlan(frames, fps, skip=context, new=new, keep=keep)
    assert cond.start_clip is not None
    length = len(cond.start_clip)
    frames = round_up(length, temporal)
    if frames > family.max_frames:
        raise InvalidVideoRequest(
            "video",
            f"{family.name} edits at most {family.max_frames} frames in one call; this video "
            f"has {length} at {fps:g} fps: cut it to {family.max_frames / fps:.3g} s",
        )
    return FramePlan(frames, fps, new=length)


def conditioning_kwargs(
    family: PipelineFamily, request: VideoRequest, plan: FramePlan
) -> dict[str, Any]:
    """The pipeline-call arguments that carry ``request.conditioning`` (empty without one)."""
    from PIL import Image

    cond = request.conditioning
    if cond is None:
        return {}
    if family.needs_image:
        # The families list no other kinds than a start image and an extension.
        image = cond.start_image if cond.keep_frames is None else cond.keep_frames[-1]
        assert image is not None
        return {"image": Image.fromarray(image)}
    if cond.start_image is not None:
        return {"image": Image.fromarray(cond.start_image), "frame_index": 0, "strength": 1.0}
    if cond.keep_frames is not None:
        tail = cond.keep_frames[len(cond.keep_frames) - plan.skip :]
        return {"video": [Image.fromarray(f) for f in tail], "frame_index": 0, "strength": 1.0}
    assert cond.start_clip is not None
    clip = cond.start_clip
    # The pipeline conditions on k*t+1 frames: hold the last frame over the padding (dropped
    # from the output again).
    padded = np.concatenate([clip, np.repeat(clip[-1:], plan.num_frames - len(clip), axis=0)])
    return {
        "video": [Image.fromarray(f) for f in padded],
        "frame_index": 0,
        "strength": 1.0 - cond.strength,
    }

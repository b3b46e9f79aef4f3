"""The frame classifiers a policy names, built once per process: :class:`FrameClassifierCache`
(the CLIP concept classifier once per set of policy concepts), and which categories a classifier
covers when it must fail closed (:func:`covered_categories`)."""

from __future__ import annotations

import hashlib
import json
import threading

from classifiers.base import CATEGORIES, Category, FrameClassifier
from classifiers.frame.registry import FRAME_CLASSIFIERS, STATIC_CATEGORIES, FailedFrameClassifier
from config.settings import Settings
from policies.resolved import ResolvedPolicy


def covered_categories(name: str, policy: ResolvedPolicy) -> tuple[Category, ...]:
    """Categories classifier ``name`` scores under ``policy`` (for fail-closed verdicts).

    Unknown names cover every category enabled at the frame stage: nothing they should have
    checked is assumed clean.
    """
    if name in STATIC_CATEGORIES:
        return STATIC_CATEGORIES[name]
    if name == "clip":
        return tuple(c for c, items in policy.policy.frame_audit.concepts.items() if items)
    return tuple(c for c in CATEGORIES if policy.stage(c, "frame").enabled)


def policy_cache_key(name: str, policy: ResolvedPolicy) -> str:
    """What in the policy an instance of ``name`` depends on ("" when nothing).

    For ``clip`` it is a hash of the concept lists, so editing an unrelated threshold does not
    recompute the concept text embeddings.
    """
    if name != "clip":
        return ""
    concepts = {
        category: [[c.prompt, c.threshold] for c in items]
        for category, items in policy.policy.frame_audit.concepts.items()
    }
    blob = json.dumps(concepts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


_MAX_VARIANTS = 8
"""Policy-dependent instances (CLIP concept sets) kept per classifier name."""


class FrameClassifierCache:
    """Builds each frame classifier once per process and hands out the set a policy names.

    Call it with a resolved policy: returns the classifiers listed in the policy's
    ``classifiers.frame``, in that order. A classifier whose construction fails (unknown name,
    missing CLIP weights) is returned as a :class:`FailedFrameClassifier`, which fails every
    audit closed; it is not cached, so fixing the file takes effect on the next audit.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._built: dict[tuple[str, str], FrameClassifier] = {}
        self._lock = threading.Lock()

    def __call__(self, policy: ResolvedPolicy) -> list[FrameClassifier]:
        return [self.get(name, policy) for name in policy.policy.classifiers.frame]

    def for_input(self, policy: ResolvedPolicy) -> list[FrameClassifier]:
        """The classifiers the policy's ``classifiers.input`` names (uploaded images)."""
        return [self.get(name, policy) for name in policy.policy.classifiers.input]

    def get(self, name: str, policy: ResolvedPolicy) -> FrameClassifier:
        """The classifier ``name`` for ``policy`` (built on first use)."""
        factory = FRAME_CLASSIFIERS.get(name)
        if factory is None:
            known = ", ".join(sorted(FRAME_CLASSIFIERS))
            return FailedFrameClassifier(
                name,
                covered_categories(name, policy),
                f"unknown frame classifier {name!r} in the policy's classifiers.frame or "
                f"classifiers.input; use one of: {known}",
            )
        key = (name, policy_cache_key(name, policy))
        with self._lock:
            cached = self._built.get(key)
            if cached is not None:
                return cached
            try:
                built = factory(self.settings, policy.policy.frame_audit.concepts)
            except Exception as exc:  # fail closed with the cause, retry on the next audit
                return FailedFrameClassifier(
                    name, covered_categories(name, policy), f"{type(exc).__name__}: {exc}"
                )
            # Tenants may use different concept lists; keep the most recent few per name.
            same_name = [k for k in self._built if k[0] == name]
            for old in same_name[: max(0, len(same_name) - _MAX_VARIANTS + 1)]:
                del self._built[old]
            self._built[key] = built
            return built

    def load_errors(self, policy: ResolvedPolicy) -> dict[str, str]:
        """Per classifier the policy names, why it cannot run (empty when all loaded)."""
        errors = {}
        for clf in self(policy):
            message = getattr(clf, "message", None) or getattr(clf, "load_error", None)
            if message:
                errors[clf.name] = str(message)
        return errors


def load_frame_classifiers(settings: Settings) -> FrameClassifierCache:
    """A process-wide classifier cache: ``cache(policy) -> list[FrameClassifier]``."""
    return FrameClassifierCache(settings)

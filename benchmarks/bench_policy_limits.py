"""What a policy file can cost at the limits of policies/limits.py (README: "Limits a deployment
gets by default").

Prints, on this machine:

- the blocklist/allowlist scan of one 10,000-character prompt (the longest accepted) under a
  policy at every list limit: 2,000 terms and 100 patterns compiling to ~20,000 RE2 instructions,
  against the shipped default;
- ``(a+)+$`` on ``"a" * n + "!"`` with Python's ``re`` (what policy patterns used) and with RE2
  (what they use now);
- refusing the YAML alias bomb of the adversarial corpus: time and peak traced memory.

    .venv/bin/python benchmarks/bench_policy_limits.py
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import time
import tracemalloc
from pathlib import Path

from classifiers.text.normalize import normalize
from policies.engine import decide
from policies.limits import MAX_PATTERN_PROGRAM, MAX_PATTERNS, MAX_TERMS
from policies.loader import DEFAULT_POLICY_PATH, PolicyError, PolicyLoader
from policies.patterns import compile_pattern
from policies.resolved import ResolvedPolicy

ROOT = Path(__file__).resolve().parent.parent
BOMB = ROOT / "tests" / "policies" / "adversarial" / "alias_bomb.yaml"


def _at_the_limits(folder: Path) -> ResolvedPolicy:
    """An overlay with as many terms and as much pattern program as a policy may have."""
    shipped = PolicyLoader().load(DEFAULT_POLICY_PATH).policy
    have_terms = sum(
        len(getattr(c, kind).terms)
        for _, c in shipped.categories.items()
        for kind in ("blocklist", "allowlist")
    )
    have_patterns = [
        p
        for _, c in shipped.categories.items()
        for kind in ("blocklist", "allowlist")
        for p in getattr(c, kind).patterns
    ]
    budget = MAX_PATTERN_PROGRAM - sum(compile_pattern(p).programsize for p in have_patterns)
    count = MAX_PATTERNS - len(have_patterns)
    # The largest pattern of this shape that still fits count times into the budget.
    repeat = 1
    while compile_pattern(f"[a-z]{{{repeat + 1}}}x").programsize * count <= budget:
        repeat += 1
    terms = [f"word{i} thing{i}" for i in range(MAX_TERMS - have_terms)]
    patterns = [f"[a-z]{{{repeat}}}{chr(97 + i % 26)}{i}" for i in range(count)]
    overlay = folder / "limits.yaml"
    overlay.write_text(
        "extends: default\ncategories:\n  hate:\n    blocklist:\n"
        f"      terms: [{', '.join(terms)}]\n"
        f"      patterns: [{', '.join(repr(p) for p in patterns)}]\n"
    )
    return PolicyLoader().load(overlay)


def _time(fn: object, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    prompts = {
        "words": " ".join(["a quiet village by the lake with children playing"] * 200)[:10_000],
        "letters": ("abcdefghij" * 1000)[:10_000],
        "leet (two scans)": ("w0rd1 th1ng " * 1000)[:10_000],
    }
    with tempfile.TemporaryDirectory() as tmp:
        policies = {"shipped default": PolicyLoader().load(DEFAULT_POLICY_PATH)}
        policies["at the limits"] = _at_the_limits(Path(tmp))
    print(
        "blocklist scan of one 10,000-character prompt, best of 3 (allowlists are scanned only "
        "when something would review or block, and cost the same per entry)"
    )
    for pname, policy in policies.items():
        for tname, text in prompts.items():
            prompt = normalize(text)
            took = _time(lambda p=prompt, pol=policy: decide(pol, "prompt", [], prompt=p))
            print(f"  {pname:<18}{tname:<18}{took * 1000:>9.1f} ms")

    print("'(a+)+$' on 'a' * n + '!'")
    redos_re = re.compile("(a+)+$", re.IGNORECASE)
    redos_re2 = compile_pattern("(a+)+$")
    for n in (16, 20, 22, 24, 50, 10_000):
        text = "a" * n + "!"
        fast = _time(lambda t=text: list(redos_re2.finditer(t)))
        slow = (
            f"{_time(lambda t=text: redos_re.search(t), 1) * 1000:>10.1f} ms"
            if n <= 24
            else "   (not run: it doubles with each 'a')"
        )
        print(f"  n={n:<7} RE2 {fast * 1000:>7.3f} ms   python re {slow}")

    tracemalloc.start()
    t0 = time.perf_counter()
    with contextlib.suppress(PolicyError):
        PolicyLoader().load(BOMB)
    took = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"alias bomb ({BOMB.stat().st_size} bytes) refused in {took * 1000:.1f} ms, "
        f"peak traced memory {peak / 1024:.0f} KiB"
    )


if __name__ == "__main__":
    main()

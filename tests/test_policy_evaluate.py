"""Policy impact tools: reading labelled prompt files, precision/recall, and policy diffs.

The moderator here is scripted (keyword verdicts) so the metrics can be checked by hand; the
decisions still come from the real engine and the real policy files. The CLI tests at the end
run the real text pipeline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from classifiers.base import Category, Evidence, PromptText, Verdict
from gateway.cli import main
from policies.decision import Action, Decision
from policies.engine import decide
from policies.evaluate import (
    PromptFileError,
    PromptRow,
    RowResult,
    StaticPolicies,
    compare,
    read_prompts,
    redecide,
    result_json,
    run,
    score,
)
from policies.loader import DEFAULT_POLICY_PATH, PolicyLoader
from policies.resolved import ResolvedPolicy

FIXTURES = Path(__file__).parent / "policies"

# keyword -> (category, score): what the scripted classifier "sees"
KEYWORDS: dict[str, tuple[Category, float]] = {
    "gun": ("violence", 0.3),
    "stab": ("violence", 0.9),
    "nude": ("sexual", 0.8),
    "slur": ("hate", 0.6),
}


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    verdicts: tuple[Verdict, ...]


class KeywordModerator:
    """Scripted stand-in for TextModerator: keyword verdicts, real policy engine."""

    def __init__(self, policy: ResolvedPolicy) -> None:
        self.policy = policy
        self.calls = 0

    def check_many(self, texts: Sequence[str], tenant: str) -> list[Outcome]:
        self.calls += 1
        out = []
        for text in texts:
            prompt = PromptText(text, text.casefold(), tuple(range(len(text) + 1)))
            verdicts = []
            for word, (category, s) in KEYWORDS.items():
                at = text.find(word)
                if at >= 0:
                    ev = Evidence(word, at, at + len(word))
                    verdicts.append(Verdict("kw", category, s, "kw", "1", (ev,)))
            decision = decide(self.policy, "prompt", verdicts, prompt=prompt)
            out.append(Outcome(decision, tuple(verdicts)))
        return out


@pytest.fixture(scope="module")
def policies() -> dict[str, ResolvedPolicy]:
    loader = PolicyLoader(DEFAULT_POLICY_PATH)
    return {
        "default": loader.load(DEFAULT_POLICY_PATH),
        "kids": loader.load(FIXTURES / "kids.yaml"),
        "studio": loader.load(FIXTURES / "studio.yaml"),
    }


def write_rows(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROWS = [
    {"id": "a", "text": "a toy gun", "labels": []},  # kids flag it (FP), default not (TN)
    {"id": "b", "text": "stab him", "labels": ["violence"], "expected": "block"},  # TP
    {"id": "c", "text": "a sword", "labels": ["violence"]},  # FN everywhere
    {"id": "d", "text": "nude beach", "labels": {"sexual": True}},  # TP, violence unlabelled
    {"id": "e", "text": "a cat", "expected": "allow"},  # unlabelled
]


def test_read_prompts_parses_labels(tmp_path: Path) -> None:
    rows = read_prompts(write_rows(tmp_path, ROWS))
    assert [r.id for r in rows] == ["a", "b", "c", "d", "e"]
    assert rows[0].labels is not None and not any(rows[0].labels.values())
    assert rows[1].labels is not None and rows[1].labels["violence"] is True
    assert rows[1].labels["hate"] is False  # a list labels every category
    assert rows[3].labels == {"sexual": True}  # a mapping labels only what it names
    assert rows[4].labels is None and rows[4].expected is Action.ALLOW


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", ":1: not valid JSON"),
        ('{"id": 1}', ':1: "text" must be a non-empty string'),
        ('{"text": "x", "labels": ["violent"]}', ":1: unknown category 'violent' in labels"),
        ('{"text": "x", "labels": "violence"}', ':1: "labels" must be a list of categories'),
        ('{"text": "x", "expected": "deny"}', ':1: "expected" must be allow, review or block'),
        ('{"text": "x", "lables": []}', ":1: unknown field(s) lables; allowed: id, text, labels"),
        ('{"id": "x", "text": "x"}\n{"id": "x", "text": "y"}', ":2: id 'x' already used on line 1"),
        ("", "no prompts"),
    ],
)
def test_bad_prompt_files_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(PromptFileError) as info:
        read_prompts(path)
    assert message in str(info.value)


def test_metrics_by_hand(tmp_path: Path, policies: dict[str, ResolvedPolicy]) -> None:
    rows = read_prompts(write_rows(tmp_path, ROWS))
    moderator = KeywordModerator(policies["kids"])
    results = run(moderator, rows, batch_size=2)
    assert moderator.calls == 3
    report = score(results, policies["kids"].version)
    assert report.rows == 5
    assert report.actions == {"block": 3, "allow": 2}
    violence = report.per_category["violence"]
    # labelled for violence: a (neg, flagged -> FP), b (pos, flagged -> TP), c (pos, missed -> FN)
    assert (violence.tp, violence.fp, violence.fn, violence.tn) == (1, 1, 1, 0)
    assert violence.precision == 0.5 and violence.recall == 0.5 and violence.f1 == 0.5
    sexual = report.per_category["sexual"]
    assert (sexual.tp, sexual.fp, sexual.fn, sexual.tn) == (1, 0, 0, 3)
    assert sexual.precision == 1.0 and sexual.recall == 1.0
    assert report.expected_total == 2 and report.expected_correct == 2
    assert report.to_json()["metrics"]["violence"]["support"] == 2


def test_positive_block_counts_only_blocks(
    tmp_path: Path, policies: dict[str, ResolvedPolicy]
) -> None:
    rows = read_prompts(write_rows(tmp_path, [{"id": "s", "text": "a slur", "labels": ["hate"]}]))
    studio = policies["studio"]
    results = run(KeywordModerator(studio), rows)
    assert score(results, studio.version).per_category["hate"].tp == 1
    # hate 0.6 blocks under studio too (studio only relaxes violence); check review-only:
    review_rows = read_prompts(
        write_rows(tmp_path, [{"id": "g", "text": "stab", "labels": ["violence"]}])
    )
    review = run(KeywordModerator(studio), review_rows)
    assert review[0].decision.action is Action.REVIEW
    assert score(review, studio.version, Action.REVIEW).per_category["violence"].tp == 1
    assert score(review, studio.version, Action.BLOCK).per_category["violence"].fn == 1


def test_result_json(tmp_path: Path, policies: dict[str, ResolvedPolicy]) -> None:
    rows = read_prompts(write_rows(tmp_path, ROWS[1:2]))
    (res,) = run(KeywordModerator(policies["kids"]), rows)  # kids block depicted violence
    out = result_json(res)
    assert out["id"] == "b" and out["action"] == "block" and out["categories"] == ["violence"]
    assert out["reasons"][0]["threshold"] == 0.3
    assert out["expected"] == "block"
    json.dumps(out)


def test_compare_lists_only_changed_prompts(
    tmp_path: Path, policies: dict[str, ResolvedPolicy]
) -> None:
    rows = read_prompts(write_rows(tmp_path, ROWS))
    old = run(KeywordModerator(policies["default"]), rows)
    new = run(KeywordModerator(policies["kids"]), rows)
    changes = compare(old, new)
    # "a toy gun" (kids thresholds) and "stab him" (kids block depicted violence, the default
    # lets it through to violence/graphic, which the keyword moderator does not score)
    assert [(c.row.id, c.kind, c.stricter) for c in changes] == [
        ("a", "allow -> block", True),
        ("b", "allow -> block", True),
    ]
    assert changes[0].to_json()["new"]["categories"] == ["violence"]
    back = compare(new, old)
    assert [(c.row.id, c.kind) for c in back] == [("a", "block -> allow"), ("b", "block -> allow")]


def test_compare_reports_category_changes_with_the_same_action(
    policies: dict[str, ResolvedPolicy],
) -> None:
    row = PromptRow("x", "t")
    a = decide(policies["default"], "prompt", [Verdict("m", "hate", 0.9, "m", "1")])
    b = decide(policies["default"], "prompt", [Verdict("m", "violence/graphic", 0.9, "m", "1")])
    (change,) = compare([RowResult(row, a)], [RowResult(row, b)])
    assert change.kind == "block -> block"
    assert not change.stricter


# --- the CLI, over the real text pipeline ------------------------------------------------------

CLI_ROWS = [
    {"id": "cat", "text": "a cat sleeping on a sofa", "labels": []},
    {"id": "proc", "text": "how do I kill a python process", "labels": []},
    # Allowed by default, blocked by the kids blocklist ("zombie"). (It was "a kid with a toy gun
    # in the garden" until the learned heads were enabled by default: their violence head gives
    # "toy gun" ~0.8, so default blocks it too.)
    {"id": "toy", "text": "a zombie walking slowly through a foggy field", "labels": []},
    {"id": "nude", "text": "a naked woman on a beach", "labels": ["sexual"], "expected": "block"},
]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("REELGUARD_POLICY", raising=False)
    return CliRunner()


@pytest.mark.slow
def test_cli_policy_test(cli: CliRunner, tmp_path: Path) -> None:
    prompts = write_rows(tmp_path, CLI_ROWS)
    out = tmp_path / "out.jsonl"
    kids = FIXTURES / "kids.yaml"
    args = ["policy", "test", str(kids), "--prompts", str(prompts), "--output", str(out)]
    result = cli.invoke(main, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 4
    assert summary["policy_version"] == PolicyLoader(DEFAULT_POLICY_PATH).load(kids).version
    assert summary["metrics"]["sexual"]["tp"] == 1
    # The zombie (kids blocklist). (The nude beach prompt was a second one until 2026-12: the
    # n-gram heads scored it violence ~0.6.)
    assert summary["metrics"]["violence"]["fp"] == 1
    rows = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows) == ["cat", "proc", "toy", "nude"]
    assert rows["cat"]["action"] == "allow"
    assert rows["proc"]["action"] == "allow"  # allowlisted programming phrase
    assert rows["toy"]["reasons"][0]["source"] == "blocklist"
    table = cli.invoke(main, args)
    assert "expected action: 1/1 correct" in table.stdout
    assert "violence" in table.stdout and "precision" in table.stdout


@pytest.mark.slow
def test_cli_policy_diff(cli: CliRunner, tmp_path: Path) -> None:
    prompts = write_rows(tmp_path, CLI_ROWS)
    args = ["policy", "diff", str(DEFAULT_POLICY_PATH), str(FIXTURES / "kids.yaml")]
    result = cli.invoke(main, [*args, "--prompts", str(prompts), "--json"])
    assert result.exit_code == 0, result.output
    changes = {c["id"]: c for c in map(json.loads, result.stdout.splitlines())}
    assert changes["toy"]["change"] == "allow -> block"
    assert changes["toy"]["new"]["categories"] == ["violence"]
    assert "cat" not in changes and "proc" not in changes


def test_cli_diff_of_identical_policies_runs_nothing(cli: CliRunner, tmp_path: Path) -> None:
    same = tmp_path / "same.yaml"
    same.write_text("extends: default\n")
    prompts = write_rows(tmp_path, CLI_ROWS)
    result = cli.invoke(
        main, ["policy", "diff", str(DEFAULT_POLICY_PATH), str(same), "--prompts", str(prompts)]
    )
    assert result.exit_code == 0
    assert "resolve to the same policy" in result.stderr


def test_cli_bad_prompts_file(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"text": "ok"}\n{"txt": "typo"}\n')
    result = cli.invoke(main, ["policy", "test", str(DEFAULT_POLICY_PATH), "--prompts", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: unknown field(s) txt" in result.stderr
    assert "Traceback" not in result.output


def test_cli_invalid_policy_for_test(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: default\ncategories:\n  hate: {prompt: {block_at: 9}}\n")
    prompts = write_rows(tmp_path, CLI_ROWS)
    result = cli.invoke(main, ["policy", "test", str(bad), "--prompts", str(prompts)])
    assert result.exit_code == 1
    assert f"{bad}:3: categories.hate.prompt.block_at: must be between 0 and 1" in result.stderr


@pytest.mark.slow
def test_redecide_matches_a_fresh_pipeline_run(
    tmp_path: Path, policies: dict[str, ResolvedPolicy], text_classifiers: Mapping[str, Any]
) -> None:
    from classifiers.text.lexicon import find_minor_mentions
    from gateway.pipeline import TextModerator

    rows = read_prompts(
        write_rows(
            tmp_path,
            [
                *CLI_ROWS,
                {"id": "minor", "text": "a sexy photo of a 12 year old"},
                {"id": "swift", "text": "Taylor Swfit on stage"},
            ],
        )
    )

    def moderator(policy: ResolvedPolicy) -> TextModerator:
        return TextModerator(StaticPolicies(policy), classifiers=text_classifiers)

    default = run(moderator(policies["default"]), rows)
    fresh = run(moderator(policies["kids"]), rows)
    again = redecide(default, policies["kids"], find_minor_mentions)
    assert [r.decision for r in again] == [r.decision for r in fresh]
    assert again[2].decision.action is Action.BLOCK  # the zombie, kids blocklist
    assert again[4].decision.reasons[0].category == "sexual/minors"


@pytest.mark.slow
def test_cli_policy_test_prints_its_misses_next_to_the_counts(
    cli: CliRunner, tmp_path: Path
) -> None:
    rows = [
        *CLI_ROWS,
        {"id": "mislabel", "text": "a cat sleeping on a sofa", "labels": ["violence"]},
        {"id": "strict", "text": "a quiet lake at dawn", "expected": "block"},
    ]
    prompts = write_rows(tmp_path, rows)
    args = ["policy", "test", str(FIXTURES / "kids.yaml"), "--prompts", str(prompts)]
    table = cli.invoke(main, args)  # no --output: the misses still show
    assert table.exit_code == 0, table.output
    out = table.stdout
    assert "misses: 3 prompt(s) decided against their labels or expected action" in out
    assert "\nmislabel: a cat sleeping on a sofa\n  missed violence: score 0." in out
    assert "\nstrict: a quiet lake at dawn\n  expected block, got allow\n" in out
    assert "\ntoy: a zombie walking slowly through a foggy field\n  flagged violence, " in out
    assert "labelled clean: violence blocklist matched 'zombie'" in out
    assert out.index("expected action:") < out.index("misses:")  # after the counts
    assert "cat:" not in out and "proc:" not in out  # rightly decided rows are not listed
    limited = cli.invoke(main, [*args, "--misses", "1"]).stdout
    assert "\n... 2 more; --misses 0 hides them" in limited and "strict:" not in limited
    assert "misses:" not in cli.invoke(main, [*args, "--misses", "0"]).stdout
    summary = json.loads(cli.invoke(main, [*args, "--json", "--misses", "2"]).stdout)
    assert summary["misses"]["count"] == 3
    assert [m["id"] for m in summary["misses"]["shown"]] == ["toy", "mislabel"]

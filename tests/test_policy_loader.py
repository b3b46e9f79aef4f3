"""Policy files: located error messages (file, line, field, fix), overlays, versions, and the
rule that ``sexual/minors`` can never be loosened."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from classifiers.base import CATEGORIES
from policies.loader import DEFAULT_POLICY_PATH, PolicyError, PolicyLoader, load_policy
from policies.resolved import policy_version
from policies.schema import MINORS_MAX_THRESHOLD, Policy, policy_json_schema

FIXTURES = Path(__file__).parent / "policies"
DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    seen = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in {path}")


def errors_of(path: Path, base: Path = DEFAULT_POLICY_PATH) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy(path, base=base)
    return [str(i) for i in info.value.issues]


def test_default_policy_loads_and_covers_every_category() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    assert [c for c, _ in policy.policy.categories.items()] == list(CATEGORIES)
    assert len(policy.version) == 12
    assert policy.sources == (DEFAULT_POLICY_PATH.resolve(),)


def test_fixtures_load() -> None:
    loader = PolicyLoader(DEFAULT_POLICY_PATH)
    for path in sorted(FIXTURES.glob("*.yaml")):
        assert loader.load(path).version


# --- located errors ----------------------------------------------------------------------------

# (why, text replaced in default.yaml, expected line needle, expected message fragment)
BASE_ERRORS = [
    (
        "threshold out of range",
        (
            "  sexual:\n    prompt: {review_at: 0.35, block_at: 0.5}",
            "  sexual:\n    prompt: {review_at: 0.35, block_at: 1.5}",
        ),
        "block_at: 1.5",
        "categories.sexual.prompt.block_at: must be between 0 and 1 (got 1.5); "
        "set a value from 0 to 1",
    ),
    (
        "review_at above block_at",
        (
            "  hate:\n    prompt: {review_at: 0.35, block_at: 0.5}",
            "  hate:\n    prompt: {review_at: 0.7, block_at: 0.5}",
        ),
        "review_at: 0.7",
        "categories.hate.prompt.block_at: must be at least review_at (0.7) (got 0.5); "
        "raise block_at or lower review_at",
    ),
    (
        "typo in a key, with a suggestion",
        (
            "  harassment:\n    prompt: {review_at: 0.35, block_at: 0.5}",
            "  harassment:\n    prompt: {review_at: 0.35, blok_at: 0.5}",
        ),
        "blok_at",
        "categories.harassment.prompt: unknown field 'blok_at'; did you mean 'block_at'?",
    ),
    (
        "unknown category, with a suggestion",
        ("  self-harm:\n", "  self_harm:\n"),
        "self_harm:",
        "categories: unknown field 'self_harm'; did you mean 'self-harm'?",
    ),
    (
        "a word instead of a number",
        ("timeout_s: 60", "timeout_s: soon"),
        "timeout_s: soon",
        "frame_audit.timeout_s: must be a number (got 'soon'); write a number",
    ),
    (
        "invalid regex names the pattern and the index",
        ("        - photo shoot\n", "        - photo shoot\n      patterns2: []\n"),
        "patterns2",
        "categories.violence.allowlist: unknown field 'patterns2'; did you mean 'patterns'?",
    ),
    (
        "sexual/minors disabled in a base policy",
        (
            "    prompt: {review_at: 0.2, block_at: 0.3}",
            "    prompt: {enabled: false, review_at: 0.2, block_at: 0.3}",
        ),
        "prompt: {enabled: false",
        "categories.sexual/minors.prompt: sexual/minors can never be disabled; "
        "remove 'enabled: false'",
    ),
    (
        "sexual/minors above the hard cap",
        (
            "    prompt: {review_at: 0.2, block_at: 0.3}",
            "    prompt: {review_at: 0.2, block_at: 0.9}",
        ),
        "block_at: 0.9",
        f"may not exceed {MINORS_MAX_THRESHOLD}",
    ),
    (
        "k greater than n",
        ("k_of_n: {k: 2, n: 3}", "k_of_n: {k: 4, n: 3}"),
        "k_of_n",
        "frame_audit.k_of_n.n: must be at least k (4) (got 3); raise n or lower k",
    ),
    (
        "both sampling rules",
        ("  sample_every_s: 0.5\n", "  sample_every_s: 0.5\n  sample_every_frames: 4\n"),
        "frame_audit:",
        "frame_audit: set exactly one of sample_every_s and sample_every_frames",
    ),
    (
        "unknown concept category",
        (
            "    self-harm:\n      - {prompt: a person cutting",
            "    selfharm:\n      - {prompt: a person cutting",
        ),
        "selfharm:",
        "frame_audit.concepts.selfharm: unknown category 'selfharm'; did you mean 'self-harm'?",
    ),
    (
        "unquoted yes/no become booleans in YAML; say to quote them",
        ("        - killer whale\n", "        - no\n"),
        "        - no",
        "categories.violence.allowlist.terms[0]: must be text (got False); put it in quotes",
    ),
    (
        "duplicate key",
        ("  celebrity:\n", "  ip:\n    prompt: {review_at: 0.1, block_at: 0.2}\n  celebrity:\n"),
        "  ip:",
        "categories.ip: duplicate key (first on line",
    ),
]


@pytest.mark.parametrize(
    ("why", "edit", "needle", "message"), BASE_ERRORS, ids=[c[0] for c in BASE_ERRORS]
)
def test_base_policy_errors_name_file_line_field_and_fix(
    tmp_path: Path, why: str, edit: tuple[str, str], needle: str, message: str
) -> None:
    old, new = edit
    assert old in DEFAULT_TEXT, why
    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT_TEXT.replace(old, new, 1))
    # a duplicate key is reported on its second occurrence
    occurrence = 2 if why == "duplicate key" else 1
    if why == "duplicate key":
        needle = "  ip:"
    found = errors_of(path)
    expected_prefix = f"{path}:{line_of(path, needle, occurrence)}: "
    assert any(e.startswith(expected_prefix) and message in e for e in found), (found, why)


def test_bad_regex_is_named_with_its_index(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        """
        extends: default
        categories:
          hate:
            blocklist:
              patterns:
                - '\\bfine\\b'
                - '(unclosed'
        """,
    )
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:7: categories.hate.blocklist.patterns[1]: pattern '(unclosed'")
    assert "is not a valid regular expression" in error
    assert error.endswith("fix it, or put a literal phrase under terms:")


def test_pattern_matching_everything_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        "extends: default\ncategories:\n  hate:\n    blocklist: {patterns: ['x*']}\n",
    )
    (error,) = errors_of(path)
    assert "matches empty text, so it would hit every prompt" in error


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "extends: default\ncategories:\n  hate: [\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:4: invalid YAML")
    assert "check indentation" in error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "must be a mapping"),
        ("description: x\n", "categories: required; add 'categories:'"),
        ("<<: {a: 1}\n", "merge keys (<<) are not supported"),
    ],
)
def test_whole_file_problems(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "t.yaml", text)
    assert any(message in e for e in errors_of(path))


def test_missing_file(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope.yaml") == [
        f"{tmp_path}/nope.yaml: file not found; check the path"
    ]


def test_base_missing_a_category_says_how_to_fix(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("  ip:\n", "  ipx:\n")
    path = tmp_path / "p.yaml"
    path.write_text(text)
    found = errors_of(path)
    assert any(
        "categories.ip: required; add 'ip:' (a base policy names every category" in e for e in found
    )


# --- overlays ---------------------------------------------------------------------------------


def test_overlay_overrides_only_what_it_names() -> None:
    base = load_policy(DEFAULT_POLICY_PATH).policy
    kids = load_policy(FIXTURES / "kids.yaml").policy
    assert kids.categories.violence.prompt.block_at == 0.3
    assert kids.categories.violence.frame == base.categories.violence.frame
    assert kids.categories.hate == base.categories.hate
    assert kids.classifiers == base.classifiers
    assert kids.frame_audit.k_of_n.k == 1
    assert kids.frame_audit.timeout_s == base.frame_audit.timeout_s
    assert kids.extends is None


def test_overlay_lists_add_to_the_parent_unless_replace(tmp_path: Path) -> None:
    base = load_policy(DEFAULT_POLICY_PATH).policy.categories.violence.allowlist
    adds = write(
        tmp_path,
        "adds.yaml",
        "extends: default\ncategories:\n  violence:\n"
        "    allowlist: {terms: [stage combat, Killer Whale]}\n",
    )
    merged = load_policy(adds).policy.categories.violence.allowlist
    assert merged.terms == (*base.terms, "stage combat")  # 'Killer Whale' already there
    assert merged.patterns == base.patterns
    replaces = write(
        tmp_path,
        "replaces.yaml",
        "extends: default\ncategories:\n  violence:\n"
        "    allowlist: {replace: true, terms: [stage combat]}\n",
    )
    replaced = load_policy(replaces).policy.categories.violence.allowlist
    assert (replaced.terms, replaced.patterns) == (("stage combat",), ())


def test_overlay_error_points_at_the_overlay_line_after_merging(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.yaml",
        """
        extends: default
        categories:
          violence:
            allowlist:
              terms: [fine]
              patterns:
                - '(bad'
        """,
    )
    (error,) = errors_of(path)
    # the default has 2 violence allowlist patterns; the overlay's item is the third after merge
    assert error.startswith(f"{path}:7: categories.violence.allowlist.patterns[2]:")


def test_cross_field_error_points_at_the_overlay(tmp_path: Path) -> None:
    path = write(
        tmp_path, "t.yaml", "extends: default\ncategories:\n  hate:\n    prompt: {review_at: 0.9}\n"
    )
    (error,) = errors_of(path)
    assert error.startswith(
        f"{path}:4: categories.hate.prompt.block_at: must be at least review_at (0.9)"
    )


def test_overlay_chain_and_sibling_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        "school.yaml",
        "extends: default\ncategories:\n  hate:\n    prompt: {review_at: 0.2, block_at: 0.3}\n",
    )
    write(
        tmp_path,
        "class-7b.yaml",
        "extends: school\ncategories:\n  hate:\n    prompt: {block_at: 0.25}\n",
    )
    policy = load_policy(tmp_path / "class-7b.yaml")
    assert policy.policy.categories.hate.prompt.review_at == 0.2
    assert policy.policy.categories.hate.prompt.block_at == 0.25
    assert [p.name for p in policy.sources] == ["default.yaml", "school.yaml", "class-7b.yaml"]


def test_extends_default_means_the_base_given_and_paths_are_refused(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(DEFAULT_TEXT.replace("timeout_s: 60", "timeout_s: 30"))
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, "a.yaml", "extends: ../base.yaml\n")
    write(sub, "b.yaml", "extends: default\n")
    assert load_policy(sub / "b.yaml", base=base).policy.frame_audit.timeout_s == 30
    assert load_policy(sub / "b.yaml").policy.frame_audit.timeout_s == 60
    (error,) = errors_of(sub / "a.yaml")
    assert error.startswith(f"{sub / 'a.yaml'}:1: extends: must be 'default' (the base policy)")


def test_circular_extends(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "extends: b\n")
    write(tmp_path, "b.yaml", "extends: a\n")
    found = errors_of(tmp_path / "a.yaml")
    assert any("circular extends" in e for e in found)


def test_invalid_parent_is_reported_with_the_child(tmp_path: Path) -> None:
    write(
        tmp_path,
        "parent.yaml",
        "extends: default\ncategories:\n  hate:\n    prompt: {block_at: 2}\n",
    )
    child = write(tmp_path, "child.yaml", "extends: parent\n")
    found = errors_of(child)
    assert found[0] == f"{child}:1: extends: the parent policy is invalid; fix it first"
    assert "parent.yaml:4: categories.hate.prompt.block_at: must be between 0 and 1" in found[1]


# --- sexual/minors can never be loosened ---------------------------------------------------------

LOOSENING = [
    (
        "raise a threshold",
        "categories:\n  sexual/minors:\n    prompt: {review_at: 0.25}\n",
        4,
        "categories.sexual/minors.prompt.review_at: sexual/minors can only be tightened by an "
        "overlay (parent 0.2, got 0.25); set 0.2 or lower",
    ),
    (
        "disable it",
        "categories:\n  sexual/minors:\n    frame: {enabled: false}\n",
        4,
        "categories.sexual/minors.frame: sexual/minors can never be disabled",
    ),
    (
        "allowlist it",
        "categories:\n  sexual/minors:\n    allowlist: {terms: [teen]}\n",
        4,
        "categories.sexual/minors.allowlist: sexual/minors cannot have an allowlist",
    ),
    (
        "drop a frame concept",
        "frame_audit:\n  concepts:\n    sexual/minors: []\n",
        4,
        "frame_audit.concepts.sexual/minors: sexual/minors concept 'a naked child' must stay",
    ),
    (
        "raise a concept threshold",
        "frame_audit:\n  concepts:\n    sexual/minors:\n"
        "      - {prompt: a naked child, threshold: 0.9}\n"
        "      - {prompt: a child in a sexual pose, threshold: 0.24}\n",
        4,
        "sexual/minors concept 'a naked child' must stay, with threshold 0.24 or lower",
    ),
    (
        "drop a classifier",
        "classifiers:\n  prompt: [lexicon]\n",
        3,
        "classifiers.prompt: an overlay cannot remove classifiers",
    ),
]


@pytest.mark.parametrize(
    ("why", "body", "line", "message"), LOOSENING, ids=[c[0] for c in LOOSENING]
)
def test_sexual_minors_cannot_be_loosened(
    tmp_path: Path, why: str, body: str, line: int, message: str
) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("extends: default\n" + body)
    found = errors_of(path)
    assert any(e.startswith(f"{path}:{line}: ") and message in e for e in found), (why, found)


def test_minors_blocklist_cannot_be_replaced_but_can_grow(tmp_path: Path) -> None:
    parent = write(
        tmp_path,
        "parent.yaml",
        "extends: default\ncategories:\n  sexual/minors:\n    blocklist: {terms: [lolicon]}\n",
    )
    assert parent.exists()
    grows = write(
        tmp_path,
        "grows.yaml",
        "extends: parent\ncategories:\n  sexual/minors:\n    blocklist: {terms: [shotacon]}\n",
    )
    assert load_policy(grows).policy.categories.sexual_minors.blocklist.terms == (
        "lolicon",
        "shotacon",
    )
    replaces = write(
        tmp_path,
        "replaces.yaml",
        "extends: parent\ncategories:\n  sexual/minors:\n"
        "    blocklist: {replace: true, terms: [x1]}\n",
    )
    (error,) = errors_of(replaces)
    assert "cannot remove sexual/minors blocklist terms ('lolicon')" in error


def test_minors_can_be_tightened() -> None:
    kids = load_policy(FIXTURES / "kids.yaml").policy.categories.sexual_minors
    assert (kids.prompt.review_at, kids.prompt.block_at) == (0.1, 0.2)


# --- versions and schema ------------------------------------------------------------------------


def test_version_ignores_comments_and_formatting_but_not_content(tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("# a comment\n" + DEFAULT_TEXT.replace("timeout_s: 60", "timeout_s:   60.0"))
    assert load_policy(a).version == load_policy(DEFAULT_POLICY_PATH).version
    a.write_text(DEFAULT_TEXT.replace("timeout_s: 60", "timeout_s: 61"))
    assert load_policy(a).version != load_policy(DEFAULT_POLICY_PATH).version


def test_overlay_that_changes_nothing_has_the_base_version(tmp_path: Path) -> None:
    same = write(
        tmp_path,
        "same.yaml",
        "extends: default\n"
        "description: Default policy for all tenants without their own policy file.\n",
    )
    assert load_policy(same).version == load_policy(DEFAULT_POLICY_PATH).version


def test_version_is_the_hash_of_the_canonical_json() -> None:
    policy = load_policy(DEFAULT_POLICY_PATH)
    again = Policy.model_validate(json.loads(json.dumps(policy.policy.canonical())))
    assert policy_version(again) == policy.version


def test_json_schema_lists_categories_and_overlay_schema_is_partial() -> None:
    schema = policy_json_schema()
    cats = schema["$defs"]["Categories"]
    assert list(cats["properties"]) == list(CATEGORIES)
    assert set(cats["required"]) == set(CATEGORIES)
    assert cats["additionalProperties"] is False
    overlay = policy_json_schema(overlay=True)
    assert overlay["required"] == ["extends"]
    assert "required" not in overlay["$defs"]["Categories"]


def test_depicted_violence_is_validated_and_only_on_violence(tmp_path: Path) -> None:
    path = write(
        tmp_path, "t.yaml", "extends: default\ncategories:\n  violence:\n    depicted: maybe\n"
    )
    (error,) = errors_of(path)
    assert error == (
        f"{path}:4: categories.violence.depicted: must be one of 'allow', 'review' or 'block' "
        "(got 'maybe')"
    )
    path = write(
        tmp_path, "u.yaml", "extends: default\ncategories:\n  hate:\n    depicted: allow\n"
    )
    (error,) = errors_of(path)
    assert "unknown field 'depicted'" in error and "categories.hate" in error
    ok = write(
        tmp_path, "v.yaml", "extends: default\ncategories:\n  violence:\n    depicted: block\n"
    )
    assert load_policy(ok).policy.categories.violence.depicted == "block"
    assert load_policy(DEFAULT_POLICY_PATH).policy.categories.violence.depicted == "allow"

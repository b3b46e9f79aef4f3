"""The policy store: tenants fall back to the base; hot reload; a bad edit keeps the old policy."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from policies.loader import DEFAULT_POLICY_PATH, PolicyError
from policies.store import PolicyStore, PolicyWatcher

FIXTURES = Path(__file__).parent / "policies"
KIDS_VIOLENCE = "  violence:\n    prompt: {review_at: 0.2, block_at: 0.3}"


def kids_violence(block_at: str) -> str:
    return KIDS_VIOLENCE.replace("block_at: 0.3", f"block_at: {block_at}")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    base = tmp_path / "policy.yaml"
    shutil.copy(DEFAULT_POLICY_PATH, base)
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for name in ("kids.yaml", "studio.yaml"):
        shutil.copy(FIXTURES / name, tenants / name)
    return base, tenants


def edit(path: Path, old: str, new: str) -> None:
    """Rewrite ``path`` and move its mtime forward (coarse-mtime filesystems)."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_tenants_and_fallback(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    assert store.get("kids").policy.categories.violence.prompt.block_at == 0.3
    assert store.get("nobody") is store.base
    assert set(store.versions()) == {"default", "kids", "studio"}
    assert store.last_error is None


def test_invalid_file_at_start_is_an_error(files: tuple[Path, Path]) -> None:
    base, tenants = files
    (tenants / "broken.yaml").write_text("extends: default\ncategories:\n  hate: {prompt: 3}\n")
    with pytest.raises(PolicyError, match=r"broken.yaml:3: categories.hate.prompt"):
        PolicyStore(base, tenants)


def test_unchanged_files_do_not_reload(files: tuple[Path, Path]) -> None:
    store = PolicyStore(*files)
    assert store.reload_if_changed() is False
    os.utime(files[0])  # touched, same content
    assert store.reload_if_changed() is False


def test_edit_is_picked_up(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    before = store.get("kids").version
    edit(tenants / "kids.yaml", KIDS_VIOLENCE, kids_violence("0.25"))
    assert store.reload_if_changed() is True
    assert store.get("kids").policy.categories.violence.prompt.block_at == 0.25
    assert store.get("kids").version != before


def test_base_edit_reaches_overlays(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    edit(base, "timeout_s: 60", "timeout_s: 45")
    assert store.reload_if_changed() is True
    assert store.get("studio").policy.frame_audit.timeout_s == 45


def test_bad_edit_keeps_serving_the_previous_policy(
    files: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    good = store.get("kids")
    edit(tenants / "kids.yaml", KIDS_VIOLENCE, kids_violence("3"))
    with caplog.at_level(logging.ERROR, logger="reelguard.policy"):
        assert store.reload_if_changed() is False
    assert store.get("kids") is good
    assert store.last_error is not None
    assert "kids.yaml:" in store.last_error
    assert "categories.violence.prompt.block_at: must be between 0 and 1 (got 3.0)" in (
        store.last_error
    )
    assert "policy reload refused" in caplog.text
    # fixing the file clears the error and serves the fix
    edit(tenants / "kids.yaml", kids_violence("3"), kids_violence("0.35"))
    assert store.reload_if_changed() is True
    assert store.last_error is None
    assert store.get("kids").policy.categories.violence.prompt.block_at == 0.35


def test_bad_base_edit_keeps_everything(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    versions = store.versions()
    edit(base, "k_of_n: {k: 2, n: 3}", "k_of_n: {k: 5, n: 3}")
    assert store.reload_if_changed() is False
    assert store.versions() == versions
    assert "frame_audit.k_of_n.n: must be at least k (5)" in (store.last_error or "")


def test_one_bad_tenant_does_not_hold_back_the_others(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    kids = store.get("kids")
    edit(tenants / "kids.yaml", "k: 1, n: 1", "k: 1, n: 0")
    edit(tenants / "studio.yaml", "review_at: 0.5, block_at: 1.0", "review_at: 0.45, block_at: 1.0")
    assert store.reload_if_changed() is True
    assert store.get("kids") is kids
    assert store.get("studio").policy.categories.violence.prompt.review_at == 0.45
    assert "kids.yaml" in (store.last_error or "")


def test_new_and_removed_tenants(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    (tenants / "news.yaml").write_text("extends: kids\n")
    assert store.reload_if_changed() is True
    assert store.get("news").version == store.get("kids").version
    (tenants / "news.yaml").unlink()
    assert store.reload_if_changed() is True
    assert store.get("news") is store.base


def test_watcher_reloads_in_the_background(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    with PolicyWatcher(store, interval_s=0.02):
        edit(base, "timeout_s: 60", "timeout_s: 50")
        deadline = time.monotonic() + 5
        while store.base.policy.frame_audit.timeout_s != 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert store.base.policy.frame_audit.timeout_s == 50
    assert not any(t.name == "reelguard-policy-watcher" for t in threading.enumerate())


def test_reads_during_reloads_always_see_a_valid_policy(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    seen: set[str] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(store.get("kids").version)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    served = {store.get("kids").version}
    current = KIDS_VIOLENCE
    for value in ("0.25", "7", "0.3", "0.25"):  # "7" is an invalid edit in between
        edit(tenants / "kids.yaml", current, kids_violence(value))
        current = kids_violence(value)
        store.reload_if_changed()
        served.add(store.get("kids").version)
    stop.set()
    for t in threads:
        t.join()
    assert seen and seen <= served
    assert len(served) == 2  # 0.3 and 0.25 (same content, same version); "7" was refused


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Kids2.yaml", "the file name is not a tenant name"),
        ("default.yaml", "tenant 'default' always gets the base policy"),
    ],
)
def test_misnamed_tenant_files_are_errors(
    files: tuple[Path, Path], name: str, message: str
) -> None:
    base, tenants = files
    (tenants / name).write_text("extends: default\n")
    with pytest.raises(PolicyError, match=message):
        PolicyStore(base, tenants)


def test_underscore_files_are_shared_parents_not_tenants(files: tuple[Path, Path]) -> None:
    base, tenants = files
    (tenants / "_school.yaml").write_text(
        "extends: default\ncategories:\n  hate:\n    prompt: {review_at: 0.1, block_at: 0.2}\n"
    )
    (tenants / "class-7b.yaml").write_text("extends: _school\n")
    store = PolicyStore(base, tenants)
    assert "_school" not in store.tenants()
    assert store.get("class-7b").policy.categories.hate.prompt.block_at == 0.2
    # editing the shared parent reaches its children
    edit(tenants / "_school.yaml", "block_at: 0.2", "block_at: 0.15")
    assert store.reload_if_changed() is True
    assert store.get("class-7b").policy.categories.hate.prompt.block_at == 0.15


def test_tenant_folder_removed_while_running(files: tuple[Path, Path]) -> None:
    base, tenants = files
    store = PolicyStore(base, tenants)
    kids = store.get("kids")
    shutil.rmtree(tenants)
    assert store.reload_if_changed() is False
    assert store.get("kids") is kids
    assert "tenant policy folder not found" in (store.last_error or "")


def test_listeners_hear_of_a_change_before_it_serves(files: tuple[Path, Path]) -> None:
    """The gateway chains each change from a listener: that record must commit before any
    request is decided (or /healthz answers) under the new version."""
    base, tenants = files
    store = PolicyStore(base, tenants)
    before = store.get("kids").version
    seen: list[tuple[str, str, str]] = []
    store.on_change(
        lambda changes: seen.extend(
            (c.kind, c.version, store.get(c.tenant).version) for c in changes
        )
    )
    edit(tenants / "kids.yaml", KIDS_VIOLENCE, kids_violence("0.25"))
    assert store.reload_if_changed() is True
    after = store.get("kids").version
    assert seen == [("edited", after, before)]  # still serving the old version meanwhile
    (tenants / "kids.yaml").unlink()
    assert store.reload_if_changed() is True
    assert seen[1:] == [("removed", store.base.version, after)]
    assert store.get("kids") is store.base

"""The review console in a real browser: Debian's headless Chromium driven by Selenium
(chromedriver), against a real uvicorn server on 127.0.0.1.

A video of tenant ``acme`` is created through ``POST /v1/videos`` and withheld by the real frame
audit (the tenant's frame policy flags every frame); a reviewer of ``acme`` signs in, filters the
queue, opens the item, finds the flagged frames blurred and greyed, sharpens one, approves the
video with a note, and the video then downloads through ``/v1``. A reviewer of ``acme`` gets 404
for ``globex``'s item, and a form posted without its CSRF token is refused. Every page is checked
with axe-core (accessibility) and photographed into the test's temporary folder; with
``REELGUARD_DOCS_SCREENSHOTS=1`` the photographs also replace the set in ``docs/console/``.

``make test`` installs chromium and chromium-driver on CI (scripts/ensure-browser.sh); elsewhere
these tests skip when the browser is missing, but on CI (``CI=true``) a missing browser fails.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ClassifierFactory, serve_in_thread
from test_audit_support import moderation
from test_videos_support import PatternBackend, make_settings, run_all, runner

from audit.log import AuditLog
from gateway.console.accounts import ReviewerStore
from gateway.keys import KeyStore
from policies.decision import Action

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "console"
FLAGGING = "extends: default\ncategories:\n  sexual:\n    frame: {review_at: 0.0, block_at: 0.99}\n"
"""A frame policy under which every sampled frame goes to review (every score is >= 0)."""


def _browser_or_skip() -> None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    message = (
        "chromium and chromium-driver are not installed (make test installs them on CI; "
        "elsewhere: apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Site:
    """The live server, its data and the people using it."""

    url: str
    settings: Any
    keys: dict[str, str]
    passwords: dict[str, str]
    acme_video: str
    globex_video: str
    shots: Path


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, text_classifiers: Mapping[str, ClassifierFactory]
) -> Iterator[Site]:
    _browser_or_skip()
    tmp = tmp_path_factory.mktemp("console")
    settings = make_settings(tmp, review_cookie_secure="never")
    for tenant in ("acme", "globex"):
        (settings.tenant_policy_dir / f"{tenant}.yaml").write_text(FLAGGING)  # type: ignore[operator]
    store = KeyStore(settings.db)
    keys = {t: store.create(t).token for t in ("acme", "globex")}
    store.close()
    reviewers = ReviewerStore(settings.db)
    passwords = {
        "alice": reviewers.create("alice", "reviewer", ["acme"]).password,
        "root": reviewers.create("root", "admin").password,
    }
    with serve_in_thread(settings, text_classifiers) as server:
        videos = {}
        for tenant, prompt in (("acme", "a red circle bouncing"), ("globex", "a blue square")):
            answer = httpx.post(
                f"{server.url}/v1/videos",
                json={"prompt": prompt, "seconds": "1", "size": "64x64"},
                headers={"Authorization": f"Bearer {keys[tenant]}"},
                timeout=60,
            )
            assert answer.status_code == 202, answer.text
            videos[tenant] = answer.json()["id"]
        # A worker (in this process) renders and audits both: each is withheld.
        assert run_all(runner(settings, backend=PatternBackend())) == 2
        log = AuditLog(settings.db)
        log.record_moderation(
            moderation(
                "modr-console-1",
                tenant="acme",
                action=Action.REVIEW,
                prompt="a knife fight in an alley at night",
            )
        )
        log.close()
        yield Site(
            server.url,
            settings,
            keys,
            passwords,
            videos["acme"],
            videos["globex"],
            tmp / "screenshots",
        )


@pytest.fixture
def browser(site: Site, tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1366,900",
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def shot(site: Site, driver: Any, name: str) -> Path:
    """A full-page screenshot into the test's folder (and docs/console/ when asked)."""
    site.shots.mkdir(parents=True, exist_ok=True)
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    picture = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True, "clip": clip},
    )
    path = site.shots / f"{name}.png"
    path.write_bytes(base64.b64decode(picture["data"]))
    if os.environ.get("REELGUARD_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / path.name)
    return path


def accessible(driver: Any) -> None:
    """axe-core finds no serious or critical violation on the page."""
    from axe_selenium_python import Axe

    axe = Axe(driver)
    axe.inject()
    results = axe.run()
    bad = [v for v in results["violations"] if v.get("impact") in ("serious", "critical")]
    assert not bad, axe.report(bad)


def sign_in(site: Site, driver: Any, name: str, password: str | None = None) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{site.url}/review")
    assert "/review/login" in driver.current_url  # not signed in: sent to the sign-in page
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password or site.passwords[name])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: driver.current_url.rstrip("/").endswith("/review"))


def wait_for(test: Any, timeout_s: float = 15.0) -> None:
    """Poll ``test`` until true; an element replaced by a page load meanwhile counts as not yet
    (chromedriver reports that as a stale element, or, mid-navigation, as an inspector error
    saying the node no longer belongs to the document)."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if test():
                return
        except (StaleElementReferenceException, NoSuchElementException):
            pass
        except WebDriverException as exc:
            if "does not belong to the document" not in str(exc):
                raise
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def session_client(site: Site, driver: Any) -> httpx.Client:
    """An HTTP client holding the browser's session cookie (to read status codes)."""
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    return httpx.Client(base_url=site.url, cookies=cookies, timeout=30)


def test_review_a_withheld_video_end_to_end(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    api = httpx.Client(base_url=site.url, timeout=30)
    acme = {"Authorization": f"Bearer {site.keys['acme']}"}
    content = f"/v1/videos/{site.acme_video}/content"
    assert api.get(content, headers=acme).status_code == 403  # withheld: never through /v1

    browser.get(f"{site.url}/review/login")
    accessible(browser)
    shot(site, browser, "01-sign-in")
    sign_in(site, browser, "alice")

    rows = browser.find_elements(By.CSS_SELECTOR, "table.items tbody tr")
    refs = [r.find_element(By.CSS_SELECTOR, "code").text for r in rows]
    assert site.acme_video in refs and "modr-console-1" in refs
    assert site.globex_video not in refs  # another tenant's item is not listed
    accessible(browser)
    shot(site, browser, "02-queue")

    Select(browser.find_element(By.ID, "f-stage")).select_by_value("frame")
    browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
    wait_for(lambda: "stage=frame" in browser.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.items tbody tr")
    assert [r.find_element(By.CSS_SELECTOR, "code").text for r in rows] == [site.acme_video]
    options = [o.text for o in Select(browser.find_element(By.ID, "f-stage")).options]
    assert "frame (1)" in options and "prompt (1)" in options  # counts per filter

    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    wait_for(lambda: f"/review/items/{site.acme_video}" in browser.current_url)
    flagged = browser.find_elements(By.CSS_SELECTOR, "li.is-flagged img.thumb")
    assert flagged, "the frame audit flagged frames; the timeline marks them"
    wait_for(
        lambda: all(browser.execute_script("return arguments[0].complete", i) for i in flagged)
    )
    assert all(i.get_property("naturalWidth") > 0 for i in flagged)  # the thumbnails load
    for img in flagged:
        style = img.value_of_css_property("filter")
        assert "blur" in style and "grayscale" in style, style
    accessible(browser)
    shot(site, browser, "03-item")

    reveal = browser.find_element(By.CSS_SELECTOR, "button.reveal")
    reveal.click()
    assert reveal.get_attribute("aria-pressed") == "true"
    sharp = reveal.find_element(By.TAG_NAME, "img")
    wait_for(lambda: sharp.value_of_css_property("filter") == "none")  # after the transition
    duration = browser.execute_async_script(
        "const done = arguments[0], v = document.querySelector('video');"
        "v.addEventListener('loadedmetadata', () => done(v.duration));"
        "v.addEventListener('error', () => done('error ' + (v.error && v.error.code)));"
        "v.preload = 'auto'; v.load();"
    )
    assert isinstance(duration, float | int) and duration > 0  # the quarantined video plays

    browser.find_element(By.CSS_SELECTOR, "input[name=verdict][value=approve]").click()
    browser.find_element(By.ID, "note").send_keys("a bouncing circle; the frame model misfired")
    browser.find_element(By.CSS_SELECTOR, "form.decision button[type=submit]").click()
    wait_for(lambda: "reviewed=" in browser.current_url)
    assert "Approved" in browser.find_element(By.CSS_SELECTOR, ".notice").text

    video = api.get(content, headers=acme)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    reviews = AuditLog(site.settings.db).story(site.acme_video).reviews
    assert [(r["reviewer"], r["verdict"]) for r in reviews] == [("alice", "approve")]

    browser.get(f"{site.url}/review/items/{site.acme_video}/history")
    assert "alice" in browser.find_element(By.ID, "h-reviews").find_element(By.XPATH, "..").text
    accessible(browser)
    shot(site, browser, "04-history")


def test_another_tenants_item_is_not_found(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(site, browser, "alice")
    with session_client(site, browser) as client:
        for path in ("", "/frames/0", "/video", "/history"):
            answer = client.get(f"/review/items/{site.globex_video}{path}")
            assert answer.status_code == 404, path
        assert client.get("/review/items/no-such-item").status_code == 404
    browser.get(f"{site.url}/review/items/{site.globex_video}")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Not found"


def test_a_form_post_without_its_csrf_token_is_refused(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(site, browser, "alice")
    browser.get(f"{site.url}/review/items/modr-console-1")
    browser.execute_script(
        "document.querySelector('form.decision input[name=csrf_token]').remove()"
    )
    browser.find_element(By.CSS_SELECTOR, "input[name=verdict][value=reject]").click()
    browser.find_element(By.ID, "note").send_keys("should not be recorded")
    browser.find_element(By.CSS_SELECTOR, "form.decision button[type=submit]").click()
    wait_for(lambda: browser.find_element(By.TAG_NAME, "h1").text == "Refused")
    assert AuditLog(site.settings.db).story("modr-console-1").reviews == []
    with session_client(site, browser) as client:
        answer = client.post(
            "/review/items/modr-console-1/review", data={"verdict": "reject", "note": "x"}
        )
        assert answer.status_code == 403


def test_pages_are_accessible_and_keyboard_usable(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    sign_in(site, browser, "root")  # an admin sees every tenant
    browser.get(f"{site.url}/review")
    refs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.items code")]
    assert site.globex_video in refs
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("class") == "skip"  # the first stop skips the navigation
    for name, path in (
        ("05-dashboard", "/review/dashboard"),
        ("06-policies", "/review/policies"),
        ("07-policy", "/review/policies/acme"),
        ("08-account", "/review/account"),
    ):
        browser.get(f"{site.url}{path}")
        accessible(browser)
        shot(site, browser, name)
    browser.get(f"{site.url}/review/dashboard")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 4
    assert int(browser.find_element(By.ID, "backlog-count").text) >= 2

    browser.get(f"{site.url}/review/items/{site.globex_video}")
    reveal = browser.find_element(By.CSS_SELECTOR, "button.reveal")
    reveal.send_keys(Keys.SPACE)  # the keyboard reveals a blurred frame too
    assert reveal.get_attribute("aria-pressed") == "true"

    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    wait_for(lambda: "/review/login" in browser.current_url)
    browser.get(f"{site.url}/review")
    assert "/review/login" in browser.current_url  # signed out: the session is gone


def test_a_character_deleted_while_a_reviewer_has_it_open(
    site: Site, browser: Any, tmp_path: Path
) -> None:
    """A character whose video shows a face waits in alice's queue; she opens it, its owner
    deletes it meanwhile, and her approval is refused with a page saying so (nothing recorded).
    The queue no longer lists it and its page offers no decision; its trail stays."""
    from selenium.webdriver.common.by import By
    from test_videos_extend import clip_of, mp4
    from test_videos_inputs import face_pixels

    acme = {"Authorization": f"Bearer {site.keys['acme']}"}
    api = httpx.Client(base_url=site.url, headers=acme, timeout=60)
    made = api.post(
        "/v1/videos/characters",
        data={"name": "Noor"},
        files={"video": ("noor.mp4", mp4(clip_of(face_pixels(128), 8), 8.0, tmp_path))},
    )
    assert made.status_code == 200, made.text
    character = made.json()["id"]
    assert made.json()["status"] == "pending_review"

    sign_in(site, browser, "alice")
    refs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.items code")]
    assert character in refs
    browser.get(f"{site.url}/review/items/{character}")
    assert "awaiting review" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text

    assert api.delete(f"/v1/videos/characters/{character}").status_code == 200
    browser.find_element(By.CSS_SELECTOR, "input[name=verdict][value=approve]").click()
    browser.find_element(By.ID, "note").send_keys("consent form on file")
    browser.find_element(By.CSS_SELECTOR, "form.decision button[type=submit]").click()
    wait_for(lambda: browser.find_element(By.TAG_NAME, "h1").text == "Nothing to decide")
    alert = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert f"character {character} was deleted by tenant:acme key:" in alert
    accessible(browser)
    story = AuditLog(site.settings.db).story(character)
    assert story.reviews == [] and [r["action"] for r in story.releases] == [
        "withheld",
        "deleted",
    ]

    browser.get(f"{site.url}/review")
    refs = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "table.items code")]
    assert character not in refs
    browser.get(f"{site.url}/review/items/{character}")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.decision")
    assert "deleted by its owner" in browser.find_element(By.ID, "ended").text
    accessible(browser)

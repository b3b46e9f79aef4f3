"""``/schema`` works without internet: the page names no other host, and every script,
stylesheet and icon it loads is served by the gateway itself (from the installed packages)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from litestar import Litestar
from litestar.testing import TestClient


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_the_schema_page_loads_nothing_from_other_hosts(
    client: TestClient[Litestar], path: str
) -> None:
    page = client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    links = _Links()
    links.feed(page.text)
    assert links.urls, "the page loads its UI from somewhere"
    head = page.text.split("<body", 1)[0]
    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w", head), head  # no CDN, no web fonts
    for url in links.urls:
        assert url.startswith("/schema/assets/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    js = client.get("/schema/assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and b"SwaggerUIBundle" in js.content


def test_the_document_is_still_served(client: TestClient[Litestar]) -> None:
    assert "/v1/videos" in client.get("/schema/openapi.json").json()["paths"]
    assert "/v1/videos" in client.get("/schema/openapi.yaml").text

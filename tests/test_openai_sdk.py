"""The official ``openai`` SDK, pointed at a real ReelGuard server, parses our responses."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow


def sdk(live_server: Any, key: str | None = None) -> OpenAI:
    return OpenAI(base_url=f"{live_server.url}/v1", api_key=key or live_server.key, max_retries=0)


def test_moderations_create_parses(live_server: Any) -> None:
    result = sdk(live_server).moderations.create(
        model="omni-moderation-latest", input="a hardcore p0rn scene"
    )
    assert result.id.startswith("modr-")
    assert result.model == "reelguard-text-1"
    (moderation,) = result.results
    assert moderation.flagged is True
    assert moderation.categories.sexual is True
    assert moderation.categories.violence is False
    assert moderation.category_scores.sexual >= 0.5
    assert moderation.categories.sexual_minors is False
    assert moderation.category_applied_input_types.sexual == ["text"]
    assert moderation.category_applied_input_types.illicit == []
    # ReelGuard's own fields survive as extras on the SDK model.
    extra = moderation.model_dump(by_alias=True)
    assert extra["action"] == "block"
    assert extra["reasons"][0]["category"] == "sexual"
    assert len(extra["policy_version"]) == 12
    assert extra["categories"]["celebrity"] is False


def test_list_input_through_the_sdk(live_server: Any) -> None:
    result = sdk(live_server).moderations.create(input=["a cat on a sofa", "sunrise over a lake"])
    assert [m.flagged for m in result.results] == [False, False]


def test_text_parts_through_the_sdk(live_server: Any) -> None:
    result = sdk(live_server).moderations.create(
        input=[{"type": "text", "text": "a cat on a sofa"}]
    )
    assert result.results[0].flagged is False


def test_a_bad_key_raises_the_sdk_authentication_error(live_server: Any) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(live_server, "rg_wrong_key").moderations.create(input="hello")
    assert info.value.status_code == 401


def test_too_many_items_raise_a_4xx_sdk_error(live_server: Any) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        sdk(live_server).moderations.create(input=["a"] * 33)
    assert info.value.status_code == 413

"""Every built-in text classifier, in one explicit registry.

The policy YAML names classifiers by these keys (``classifiers.prompt: [lexicon, celebrity,
ip]``). Each value is a factory called once per process by the pipeline; the data behind them
(lexicon, gazetteer) is loaded once and shared, so building ``celebrity`` and ``ip`` costs one
gazetteer load.

``detoxify`` is optional: it loads local Detoxify weights named by the ``REELGUARD_DETOXIFY_*``
settings (:mod:`classifiers.text.detoxify`), and fails closed where a policy lists it without
them. No shipped policy lists it.
"""

from __future__ import annotations

from collections.abc import Callable

from classifiers.base import TextClassifier
from classifiers.text.detoxify import load_detoxify
from classifiers.text.gazetteer import GazetteerClassifier
from classifiers.text.learned import LearnedTextClassifier
from classifiers.text.lexicon import LexiconClassifier


def _celebrity() -> TextClassifier:
    return GazetteerClassifier(categories=("celebrity",), name="celebrity")


def _ip() -> TextClassifier:
    return GazetteerClassifier(categories=("ip",), name="ip")


def _gazetteer() -> TextClassifier:
    return GazetteerClassifier(categories=("celebrity", "ip"), name="gazetteer")


TEXT_CLASSIFIERS: dict[str, Callable[[], TextClassifier]] = {
    "lexicon": LexiconClassifier,
    "celebrity": _celebrity,
    "ip": _ip,
    "gazetteer": _gazetteer,
    "learned": LearnedTextClassifier,
    "detoxify": load_detoxify,
}
"""Registry name -> factory. ``gazetteer`` covers both ``celebrity`` and ``ip`` in one pass
(use it instead of, not together with, the two single-category entries)."""

"""The optional Detoxify classifier, loaded through the product path from tiny checkpoints.

The tests build what the real files look like, only tiny: a Hugging Face folder (config.json,
tokenizer.json, tokenizer_config.json) and a Detoxify ``.ckpt`` holding ``state_dict`` and
``config`` (``arch.args`` and ``dataset.args.classes``, as ``detoxify.load_checkpoint`` reads
them). The reference scores come from the in-memory model the checkpoint was saved from, run
the way Detoxify's ``predict`` runs it: ``sigmoid(model(**tokenizer(texts, truncation=True,
padding=True)).logits)``, first ``len(classes)`` columns.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from litestar import Litestar
from litestar.testing import TestClient
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from classifiers.base import TextClassifier
from classifiers.registry import TEXT_CLASSIFIERS
from classifiers.text.detoxify import (
    DetoxifyClassifier,
    DetoxifySpec,
    DetoxifyUnavailable,
    detoxify_available,
)
from classifiers.text.normalize import normalize
from config.settings import Settings
from gateway.app import create_app
from policies.loader import PolicyError, PolicyLoader
from policies.schema import policy_json_schema

ClassifierFactory = Callable[[], TextClassifier]

WORDS = ["a", "cat", "on", "the", "sofa", "i", "will", "kill", "you", "idiot", "dog", "park"]
ORIGINAL_CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
UNBIASED_CLASSES = [
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
]
BERT_POSITIONS = 24
"""Tiny position table, so a few dozen words already need several windows."""


@dataclass
class Tiny:
    """A tiny model, the folder its tokenizer/config lives in, and its Detoxify checkpoint."""

    model: Any
    model_dir: Path
    checkpoint: Path

    def spec(self, **changes: Any) -> DetoxifySpec:
        return DetoxifySpec(
            **{"checkpoint": self.checkpoint, "model_dir": self.model_dir, **changes}
        )

    def reference(self, texts: list[str], n_labels: int) -> list[list[float]]:
        """Detoxify's ``predict`` on this model (truncating at the model's length, which the
        real tokenizer configs give as ``model_max_length``; the tiny model has fewer
        positions)."""
        tok = transformers.AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        limit = self.model.config.max_position_embeddings
        enc = tok(texts, truncation=True, max_length=limit, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = self.model(**enc).logits
        return torch.sigmoid(logits)[:, :n_labels].tolist()


def _bert_folder(folder: Path) -> transformers.BertConfig:
    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    tok.save(str(folder / "tokenizer.json"))
    specials = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]"}
    specials |= {"sep_token": "[SEP]", "mask_token": "[MASK]"}
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "model_max_length": 512, **specials})
    )
    # A large initialiser range makes the scores depend visibly on the words.
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=BERT_POSITIONS, initializer_range=0.6,
    )  # fmt: skip
    config.save_pretrained(folder)
    return config


def _xlmr_folder(folder: Path) -> transformers.XLMRobertaConfig:
    folder.mkdir(parents=True)
    pieces = ["<s>", "<pad>", "</s>", "<unk>", *(f"\u2581{w}" for w in WORDS), "<mask>"]
    tok = Tokenizer(models.Unigram([(p, -1.0) for p in pieces], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tok.save(str(folder / "tokenizer.json"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    specials |= {"pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>"}
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **specials})
    )
    config = transformers.XLMRobertaConfig(
        vocab_size=len(pieces), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=34, pad_token_id=1,
    )  # fmt: skip
    config.save_pretrained(folder)
    return config


def _save_checkpoint(path: Path, model: Any, arch: dict[str, Any], classes: list[str]) -> Path:
    torch.save(
        {"state_dict": model.state_dict(), "config": {"arch": {"args": arch},
         "dataset": {"args": {"classes": classes}}}},
        path,
    )  # fmt: skip
    return path


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    """A tiny 'original' (bert-base-uncased, 6 Jigsaw labels under their old names)."""
    root = tmp_path_factory.mktemp("detoxify-original")
    config = _bert_folder(root / "bert-base-uncased")
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(
        transformers.BertConfig(**{**config.to_dict(), "num_labels": 6})
    ).eval()
    arch = {"model_type": "bert-base-uncased", "model_name": "BertForSequenceClassification",
            "tokenizer_name": "BertTokenizer", "num_classes": 6}  # fmt: skip
    ckpt = _save_checkpoint(root / "toxic_original.ckpt", model, arch, ORIGINAL_CLASSES)
    return Tiny(model, root / "bert-base-uncased", ckpt)


# Scores the 'multilingual' tiny model gives any text: its classifier ignores the input.
FIXED = {
    "toxicity": 0.30,
    "severe_toxicity": 0.05,
    "obscene": 0.62,
    "identity_attack": 0.71,
    "insult": 0.40,
    "threat": 0.83,
    "sexual_explicit": 0.91,
}


def _multilingual(root: Path, probs: Mapping[str, float]) -> Tiny:
    """A tiny 'multilingual' (xlm-roberta-base): 16 outputs, 7 labels, fixed label scores."""
    config = _xlmr_folder(root / "xlm-roberta-base")
    model = transformers.XLMRobertaForSequenceClassification(
        transformers.XLMRobertaConfig(**{**config.to_dict(), "num_labels": 16})
    ).eval()
    with torch.no_grad():
        model.classifier.out_proj.weight.zero_()
        # The 9 identity-mention columns after the labels score ~1: they must be ignored.
        bias = [_logit(probs[c]) for c in UNBIASED_CLASSES] + [9.0] * 9
        model.classifier.out_proj.bias.copy_(torch.tensor(bias))
    arch = {"model_type": "xlm-roberta-base", "tokenizer_name": "XLMRobertaTokenizer",
            "model_name": "XLMRobertaForSequenceClassification", "num_classes": 16}  # fmt: skip
    ckpt = _save_checkpoint(root / "multilingual.ckpt", model, arch, UNBIASED_CLASSES)
    return Tiny(model, root / "xlm-roberta-base", ckpt)


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    return _multilingual(tmp_path_factory.mktemp("detoxify-multilingual"), FIXED)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Tiny | None], None]]:
    """``env(tiny)`` points the REELGUARD_DETOXIFY_* settings at ``tiny`` (None: unset)."""

    def point(tiny: Tiny | None) -> None:
        for name in ("CHECKPOINT", "MODEL_DIR", "SHA256"):
            monkeypatch.delenv(f"REELGUARD_DETOXIFY_{name}", raising=False)
        if tiny is not None:
            monkeypatch.setenv("REELGUARD_DETOXIFY_CHECKPOINT", str(tiny.checkpoint))
            monkeypatch.setenv("REELGUARD_DETOXIFY_MODEL_DIR", str(tiny.model_dir))

    point(None)
    yield point


# -- loading and scoring ---------------------------------------------------------------------


def test_registry_builds_it_from_settings_and_it_scores_like_detoxify(
    original: Tiny, env: Callable[[Tiny | None], None]
) -> None:
    assert not detoxify_available()
    env(original)
    assert detoxify_available()
    clf = TEXT_CLASSIFIERS["detoxify"]()
    assert isinstance(clf, DetoxifyClassifier) and isinstance(clf, TextClassifier)
    assert clf.labels == (
        "toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack",
    )  # fmt: skip
    assert clf.categories == ("violence/graphic", "hate", "harassment")
    assert clf.model_id == "unitary/detoxify:bert-base-uncased"
    digest = hashlib.sha256(original.checkpoint.read_bytes()).hexdigest()
    assert clf.model_version == f"sha256:{digest[:16]}"
    assert clf.max_tokens == BERT_POSITIONS

    texts = ["a cat on the sofa", "i will kill you idiot", "the dog park"]
    got = clf.predict(texts)
    want = original.reference(texts, 6)
    for row_got, row_want in zip(got, want, strict=True):
        assert list(row_got) == list(clf.labels)
        assert list(row_got.values()) == pytest.approx(row_want, abs=1e-5)
    assert max(abs(a - b) for a, b in zip(want[0], want[1], strict=True)) > 0.01  # input matters


def test_verdicts_map_labels_to_categories_with_evidence(multilingual: Tiny) -> None:
    clf = DetoxifyClassifier(multilingual.spec())
    assert clf.labels == tuple(UNBIASED_CLASSES)
    assert clf.categories == ("sexual", "violence/graphic", "hate", "harassment")
    assert clf.max_tokens == 32  # 34 positions, of which RoBERTa skips padding_idx + 1
    prompt = normalize("a cat on the sofa")
    verdicts = clf.classify(prompt)
    by_category = {v.category: v for v in verdicts}
    assert len(verdicts) == 4 and set(by_category) == set(clf.categories)
    expected = {
        "harassment": ("obscene", 0.62),  # highest of toxicity, severe, obscene, insult
        "violence/graphic": ("threat", 0.83),
        "hate": ("identity_attack", 0.71),
        "sexual": ("sexual_explicit", 0.91),
    }
    for category, (label, score) in expected.items():
        v = by_category[category]  # type: ignore[index]
        assert v.classifier == "detoxify" and v.score == pytest.approx(score, abs=1e-5)
        assert v.model_id == "unitary/detoxify:xlm-roberta-base"
        (ev,) = v.evidence
        assert ev.detail == f"detoxify {label} {score:.2f}"
        assert ev.text == "a cat on the sofa"
        assert ev.start is None and ev.end is None  # a model window, not a located hit


def test_low_scores_carry_no_evidence(tmp_path: Path) -> None:
    quiet = _multilingual(tmp_path, dict.fromkeys(UNBIASED_CLASSES, 0.1))
    verdicts = DetoxifyClassifier(quiet.spec()).classify(normalize("a cat"))
    assert [v.score for v in verdicts] == pytest.approx([0.1] * 4, abs=1e-5)
    assert all(v.evidence == () for v in verdicts)


def _windows(ids: list[int], width: int, overlap: int) -> list[list[int]]:
    out = [ids[:width]]
    start = width - overlap
    while start + overlap < len(ids):
        out.append(ids[start : start + width])
        start += width - overlap
    return out


def test_a_long_prompt_is_scored_window_by_window(original: Tiny) -> None:
    clf = DetoxifyClassifier(original.spec())
    text = " ".join(["the cat on a sofa in the park"] * 8 + ["i will kill you idiot"])
    got = clf.predict([text])[0]

    tok = transformers.AutoTokenizer.from_pretrained(original.model_dir, local_files_only=True)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    width = BERT_POSITIONS - 2
    windows = _windows(ids, width, overlap=BERT_POSITIONS // 4)
    assert len(windows) >= 3
    batch = torch.tensor([[2, *w, 3] + [0] * (width - len(w)) for w in windows])
    mask = torch.arange(width + 2)[None, :] < torch.tensor([len(w) + 2 for w in windows])[:, None]
    with torch.no_grad():
        probs = torch.sigmoid(original.model(input_ids=batch, attention_mask=mask.long()).logits)
    want = probs.max(dim=0).values.tolist()
    assert list(got.values()) == pytest.approx(want, abs=1e-5)
    truncated = original.reference([text], 6)[0]  # what Detoxify itself reads: the first window
    assert truncated == pytest.approx(probs[0].tolist(), abs=1e-5)
    assert any(g > t + 1e-3 for g, t in zip(got.values(), truncated, strict=True))

    # The verdict quotes the original text of the window that scored highest.
    for v in clf.classify(normalize(text)):
        if v.evidence:
            assert v.evidence[0].text in text and len(v.evidence[0].text) < len(text)


def test_the_normalised_text_is_scored_too(original: Tiny) -> None:
    clf = DetoxifyClassifier(original.spec())
    prompt = normalize("I will K1LL you, id1ot")
    assert prompt.normalized != prompt.original.casefold()
    both = clf.predict([prompt.original, prompt.normalized])
    harassment = max(both[i][label] for i in (0, 1) for label in
                     ("toxicity", "severe_toxicity", "obscene", "insult"))  # fmt: skip
    (v,) = [v for v in clf.classify(prompt) if v.category == "harassment"]
    assert v.score == pytest.approx(harassment, abs=1e-6)
    if v.evidence:  # quoted from what the user typed, whichever text scored
        assert v.evidence[0].text == prompt.original


def test_batches_match_single_prompts_and_threads_agree(original: Tiny) -> None:
    clf = DetoxifyClassifier(original.spec())
    texts = [f"{a} {b} the {c}" for a in WORDS[:4] for b in WORDS[4:8] for c in WORDS[8:]]
    prompts = [normalize(t) for t in texts] + [normalize("i will kill you " * 30)]
    single = [[v.score for v in clf.classify(p)] for p in prompts]
    batched = [[v.score for v in vs] for vs in clf.classify_many(prompts)]
    np.testing.assert_allclose(batched, single, atol=1e-5)

    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(k, len(prompts), 8):
                results[i] = [v.score for v in clf.classify(prompts[i])]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_allclose([results[i] for i in range(len(prompts))], single, atol=1e-5)


# -- fail closed -----------------------------------------------------------------------------


def _rewrite(tiny: Tiny, path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """A copy of ``tiny``'s checkpoint with ``edit`` applied to the loaded dict."""
    loaded = torch.load(tiny.checkpoint, weights_only=True)
    edit(loaded)
    torch.save(loaded, path)
    return path


def test_settings_without_weights_name_the_setting_and_the_fix(
    original: Tiny, tmp_path: Path
) -> None:
    cases = [
        (DetoxifySpec(), "set REELGUARD_DETOXIFY_CHECKPOINT"),
        (DetoxifySpec(model_dir=original.model_dir), "set REELGUARD_DETOXIFY_CHECKPOINT"),
        (DetoxifySpec(checkpoint=original.checkpoint), "set REELGUARD_DETOXIFY_MODEL_DIR"),
        (original.spec(checkpoint=tmp_path / "gone.ckpt"), "fix REELGUARD_DETOXIFY_CHECKPOINT"),
        (original.spec(model_dir=tmp_path / "nope"), "fix REELGUARD_DETOXIFY_MODEL_DIR"),
        (original.spec(sha256="0" * 64), "not REELGUARD_DETOXIFY_SHA256"),
    ]
    for spec, message in cases:
        with pytest.raises(DetoxifyUnavailable, match=message):
            DetoxifyClassifier(spec)
    digest = hashlib.sha256(original.checkpoint.read_bytes()).hexdigest()
    assert DetoxifyClassifier(original.spec(sha256=digest.upper())).model_version.endswith(
        digest[:16]
    )


def test_a_corrupt_or_foreign_checkpoint_is_refused(original: Tiny, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(original.checkpoint.read_bytes()[:5000])
    bare = tmp_path / "bare.ckpt"
    torch.save(torch.load(original.checkpoint, weights_only=True)["state_dict"], bare)
    no_classes = _rewrite(
        original, tmp_path / "nc.ckpt", lambda d: d["config"]["dataset"]["args"].clear()
    )
    too_many = _rewrite(
        original, tmp_path / "tm.ckpt",
        lambda d: d["config"]["dataset"]["args"].update(classes=ORIGINAL_CLASSES * 2),
    )  # fmt: skip
    unknown = _rewrite(
        original, tmp_path / "uk.ckpt",
        lambda d: d["config"]["dataset"]["args"].update(classes=["spam"]),
    )  # fmt: skip
    missing_weight = _rewrite(
        original, tmp_path / "mw.ckpt", lambda d: d["state_dict"].pop("classifier.weight")
    )
    wrong_shape = _rewrite(
        original, tmp_path / "ws.ckpt",
        lambda d: d["state_dict"].update({"classifier.bias": torch.zeros(3)}),
    )  # fmt: skip
    any_callable = _rewrite(
        original, tmp_path / "ac.ckpt",
        lambda d: d["config"]["arch"]["args"].update(model_name="pipeline"),
    )  # fmt: skip
    cases = [
        (truncated, "cannot read .* as a checkpoint"),
        (bare, "holds 'config' and 'state_dict'"),
        (no_classes, "config.dataset.args.classes is missing"),
        (too_many, "must list 1 to 6 label names"),
        (unknown, "none of the labels \\['spam'\\] maps to a policy category"),
        (missing_weight, "missing \\['classifier.weight'\\]"),
        (wrong_shape, "does not fit BertForSequenceClassification"),
        (any_callable, "names 'pipeline' as its model class"),
    ]
    for path, message in cases:
        with pytest.raises(DetoxifyUnavailable, match=message):
            DetoxifyClassifier(original.spec(checkpoint=path))


def test_a_score_that_is_not_a_number_fails_closed(original: Tiny, tmp_path: Path) -> None:
    nan = _rewrite(
        original, tmp_path / "nan.ckpt",
        lambda d: d["state_dict"]["classifier.bias"].fill_(float("nan")),
    )  # fmt: skip
    with pytest.raises(DetoxifyUnavailable, match=r"cannot score a prompt .*not a number"):
        DetoxifyClassifier(original.spec(checkpoint=nan))
    clf = DetoxifyClassifier(original.spec())
    with torch.no_grad():
        clf.model.classifier.bias[3] = float("nan")  # threat: violence
    with pytest.raises(ValueError, match="not a number"):  # the pipeline blocks on a raise
        clf.classify(normalize("a cat"))
    assert clf.classify_many([]) == []


class _Payload:
    """Pickles to a call that would create a file if the checkpoint were fully unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.makedirs, (str(self.marker),))


def test_a_checkpoint_cannot_run_code(original: Tiny, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = _rewrite(original, tmp_path / "evil.ckpt", lambda d: d.update(extra=_Payload(marker)))
    with pytest.raises(DetoxifyUnavailable, match="cannot run code"):
        DetoxifyClassifier(original.spec(checkpoint=evil))
    assert not marker.exists()


def test_a_model_folder_of_another_model_is_refused(original: Tiny, multilingual: Tiny) -> None:
    with pytest.raises(DetoxifyUnavailable, match="holds a 'xlm-roberta' model; the checkpoint"):
        DetoxifyClassifier(original.spec(model_dir=multilingual.model_dir))


def test_a_model_folder_without_a_tokenizer_is_refused(original: Tiny, tmp_path: Path) -> None:
    folder = tmp_path / "config-only"
    folder.mkdir()
    (folder / "config.json").write_bytes((original.model_dir / "config.json").read_bytes())
    with pytest.raises(DetoxifyUnavailable, match=r"no tokenizer\.json in REELGUARD_DETOX"):
        DetoxifyClassifier(original.spec(model_dir=folder))


# -- in a policy -----------------------------------------------------------------------------


OVERLAY = "extends: default\nclassifiers:\n  prompt: [lexicon, celebrity, ip, learned, detoxify]\n"


def _moderate(client: TestClient[Litestar], token: str, text: str) -> dict[str, Any]:
    response = client.post(
        "/v1/moderations", json={"input": text}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["results"][0]
    return result


def test_a_policy_that_lists_detoxify_without_weights_blocks_and_fails_healthz(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    make_key: Callable[[str], str],
    env: Callable[[Tiny | None], None],
) -> None:
    assert settings.tenant_policy_dir is not None
    (settings.tenant_policy_dir / "toxic.yaml").write_text(OVERLAY)
    # The registry's own factory (the shared fixture caches what it built).
    registry = {**text_classifiers, "detoxify": TEXT_CLASSIFIERS["detoxify"]}
    with TestClient(create_app(settings, classifiers=registry)) as client:
        assert client.get("/healthz").status_code == 200  # the base policy does not list it
        result = _moderate(client, make_key("toxic"), "a cat on a sofa")
        assert result["action"] == "block"
        errors = [r for r in result["reasons"] if r["source"] == "error"]
        assert errors and all(r["classifier"] == "detoxify" for r in errors)
        assert "set REELGUARD_DETOXIFY_CHECKPOINT" in errors[0]["message"]
        assert _moderate(client, make_key("default"), "a cat on a sofa")["action"] == "allow"
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "failing"
        assert "DetoxifyUnavailable" in health.json()["models"]["detoxify"]


def test_with_weights_its_scores_decide_like_any_classifier(
    settings: Settings,
    text_classifiers: Mapping[str, ClassifierFactory],
    make_key: Callable[[str], str],
    env: Callable[[Tiny | None], None],
    multilingual: Tiny,
) -> None:
    assert settings.tenant_policy_dir is not None
    (settings.tenant_policy_dir / "toxic.yaml").write_text(OVERLAY)
    env(multilingual)
    registry = {**text_classifiers, "detoxify": TEXT_CLASSIFIERS["detoxify"]}
    with TestClient(create_app(settings, classifiers=registry)) as client:
        result = _moderate(client, make_key("toxic"), "a cat on a sofa")
        assert result["action"] == "block"  # the fixed scores: sexual 0.91, violence 0.83, ...
        reasons = {r["category"]: r for r in result["reasons"] if r["classifier"] == "detoxify"}
        assert set(reasons) == {"sexual", "violence/graphic", "hate", "harassment"}
        assert all(r["source"] == "classifier" for r in reasons.values())
        assert reasons["violence/graphic"]["score"] == pytest.approx(0.83, abs=1e-4)
        models = client.get("/healthz").json()["models"]
        assert models["detoxify"].startswith("unitary/detoxify:xlm-roberta-base@sha256:")


def test_policy_validation_and_schema_know_the_name(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(OVERLAY)
    loaded = PolicyLoader(Path("policies/default.yaml")).load(good)
    assert "detoxify" in loaded.policy.classifiers.prompt
    typo = tmp_path / "typo.yaml"
    typo.write_text(OVERLAY.replace("detoxify", "detoxfy"))
    with pytest.raises(PolicyError, match="did you mean 'detoxify'"):
        PolicyLoader(Path("policies/default.yaml")).load(typo)
    prompt = policy_json_schema()["$defs"]["ClassifierSelection"]["properties"]["prompt"]
    assert prompt["items"]["enum"] == list(TEXT_CLASSIFIERS)
    assert "detoxify" in prompt["items"]["enum"]

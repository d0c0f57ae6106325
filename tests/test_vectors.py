"""Word2Vec + Doc2Vec: deterministic training, bundle round trip without pickle, OOV handling."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from m3restore.text.vectors import TextVectors, VectorTextEncoder, tokenize
from m3restore.training import vectors as tv
from m3restore.weights import extend_bundle, open_bundle, save_bundle


@pytest.fixture(scope="module")
def tiny_vectors():
    docs, summary = tv.build_corpus(seed=3, descriptions=400, gensim_text=False)
    return tv.train_vectors(docs, dim=16, seed=3, epochs=3, corpus=summary)


def test_corpus_recipe_mixes_descriptions_and_gensim_text():
    docs, summary = tv.build_corpus(seed=0, descriptions=50)
    assert summary["generated_descriptions"] == 50 and summary["gensim_documents"] > 300
    assert summary["tokens"] == sum(map(len, docs))
    words = {w for d in docs[:50] for w in d}
    assert {"blur", "noise"} & words
    assert docs[:50] == tv.build_corpus(seed=0, descriptions=50, gensim_text=False)[0]


def test_training_is_deterministic(tiny_vectors):
    docs, summary = tv.build_corpus(seed=3, descriptions=400, gensim_text=False)
    again = tv.train_vectors(docs, dim=16, seed=3, epochs=3, corpus=summary)
    assert again.config.vocab == tiny_vectors.config.vocab
    assert torch.equal(again.word_vectors, tiny_vectors.word_vectors)
    assert torch.equal(again.doc_output, tiny_vectors.doc_output)


def test_doc_vectors_never_use_gensims_hash_seeded_inference(tiny_vectors, tmp_path, monkeypatch):
    """gensim's infer_vector seeds its start vector from Python's per-process randomised hash();
    ours must not call it, and two fresh loads must agree."""
    from gensim.models.doc2vec import Doc2Vec

    def forbidden(*args, **kwargs):
        raise AssertionError("infer_vector depends on PYTHONHASHSEED")

    monkeypatch.setattr(Doc2Vec, "infer_vector", forbidden)
    save_bundle(tmp_path / "b", {"text_vectors": tiny_vectors})
    first = open_bundle(tmp_path / "b").load("text_vectors").doc_vector("strong motion blur")
    second = open_bundle(tmp_path / "b").load("text_vectors").doc_vector("strong motion blur")
    assert np.array_equal(first, second) and np.any(first)


def test_out_of_vocabulary_words(tiny_vectors):
    assert not np.any(tiny_vectors.word_vector("zzzqqq"))
    assert not np.any(tiny_vectors.sentence_vector("zzzqqq xxyyzz"))
    assert not np.any(tiny_vectors.sentence_vector(""))
    assert not np.any(tiny_vectors.doc_vector("zzzqqq"))
    assert tiny_vectors.similar("zzzqqq") == []
    known = tiny_vectors.sentence_vector("blur zzzqqq")
    np.testing.assert_allclose(known, tiny_vectors.word_vector("blur"), rtol=1e-6)
    mean = tiny_vectors.sentence_vector("strong blur")
    expected = (tiny_vectors.word_vector("strong") + tiny_vectors.word_vector("blur")) / 2
    np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-7)


def test_doc_vector_is_deterministic_and_text_dependent(tiny_vectors):
    a = tiny_vectors.doc_vector("strong motion blur on a street")
    b = tiny_vectors.doc_vector("strong motion blur on a street")
    c = tiny_vectors.doc_vector("mild noise")
    assert a.shape == (16,) and np.array_equal(a, b) and not np.allclose(a, c)
    assert not np.array_equal(a, tiny_vectors.doc_vector("strong motion blur on a street", seed=5))


def test_bundle_round_trip_is_safetensors_and_json(tiny_vectors, tmp_path):
    path = save_bundle(tmp_path / "b", {"text_vectors": tiny_vectors})
    files = sorted(p.name for p in (path / "text_vectors").iterdir())
    assert files == ["config.json", "model.safetensors"]
    config = json.loads((path / "text_vectors" / "config.json").read_text())
    assert config["dim"] == 16 and len(config["vocab"]) == len(tiny_vectors.config.vocab)
    loaded = open_bundle(path).load("text_vectors")
    assert isinstance(loaded, TextVectors)
    assert torch.equal(loaded.word_vectors, tiny_vectors.word_vectors)
    text = "heavy jpeg artifacts on a portrait"
    assert np.array_equal(loaded.doc_vector(text), tiny_vectors.doc_vector(text))
    assert loaded.similar("blur", 3) == tiny_vectors.similar("blur", 3)


def test_rebuilt_doc2vec_matches_gensims_own_inference_path():
    """Our inference over the rebuilt model = gensim's dbow step on the original model."""
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument
    from gensim.models.doc2vec_inner import train_document_dbow

    docs, _ = tv.build_corpus(seed=1, descriptions=200, gensim_text=False)
    model = Doc2Vec(
        [TaggedDocument(d, [i]) for i, d in enumerate(docs)],
        dm=0,
        vector_size=8,
        min_count=2,
        negative=5,
        hs=0,
        seed=1,
        workers=1,
        epochs=2,
    )
    from gensim.models import Word2Vec

    vectors = TextVectors.from_gensim(Word2Vec(docs, vector_size=8, min_count=2, seed=1, workers=1, epochs=1), model)
    words = tokenize("moderate noise on the beach")
    ours = vectors.doc_vector(words)
    # The same steps, by hand, on gensim's original object with the same start and random state.
    import zlib

    words = [w for w in words if w in model.wv.key_to_index]
    key = zlib.crc32(" ".join(words).encode()) ^ 1
    model.random = np.random.RandomState(key & 0x7FFFFFFF)
    vec = ((np.random.default_rng(key).random((1, 8), dtype=np.float32) - 0.5) / 8).astype(np.float32)
    alpha, step = model.alpha, (model.alpha - model.min_alpha) / (vectors.config.infer_epochs - 1)
    for _ in range(vectors.config.infer_epochs):
        train_document_dbow(
            model,
            words,
            [0],
            alpha,
            np.zeros(8, np.float32),
            learn_words=False,
            learn_hidden=False,
            doctag_vectors=vec,
            doctags_lockf=np.ones(1, np.float32),
        )
        alpha -= step
    np.testing.assert_allclose(ours, vec[0], rtol=1e-5, atol=1e-6)


def test_extend_bundle_keeps_the_predictor(tiny_vectors, tiny_bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    before = json.loads((target / "model_index.json").read_text())
    extend_bundle(target, {"text_vectors": tiny_vectors})
    after = json.loads((target / "model_index.json").read_text())
    assert after["components"]["predictor"] == before["components"]["predictor"]
    assert after["text_encoder"] == before["text_encoder"]
    assert set(after["components"]) == {"predictor", "text_vectors"}
    bundle = open_bundle(target)  # every checksum verifies
    assert bundle.load("text_vectors").dim == 16
    assert not [p for p in target.iterdir() if p.name.startswith(".")]


def test_vector_text_encoder_conditions_a_predictor(tiny_vectors):
    from m3restore.models.m3unet import M3UNet, M3UNetConfig

    encoder = VectorTextEncoder(tiny_vectors)
    emb = encoder.encode(["strong motion blur", "", "zzzqqq"])
    assert emb.tokens.shape[0] == 3 and emb.tokens.shape[2] == 16
    assert emb.present.tolist() == [True, False, True]
    assert emb.mask[0].sum() == 3 and emb.mask[2].sum() == 1
    torch.manual_seed(0)
    net = M3UNet(M3UNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=16, cond_dim=8))
    net.eval()
    with torch.no_grad():
        y = net(torch.rand(3, 3, 32, 32), emb)
    assert torch.isfinite(y if torch.is_tensor(y) else y[0]).all()


def test_cli_stage_vectors(monkeypatch, tmp_path, tiny_bundle):
    from typer.testing import CliRunner

    from m3restore.cli import app

    real = tv.build_corpus
    monkeypatch.setattr(tv, "build_corpus", lambda seed=0: real(seed, descriptions=200, gensim_text=False))
    target = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, target)
    result = CliRunner().invoke(
        app, ["train", "--stage", "vectors", "--out", str(tmp_path / "run"), "--add-to", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "bundle" / "model_index.json").is_file()
    assert json.loads((tmp_path / "run" / "vectors.json").read_text())["vocab"] > 50
    assert open_bundle(target).load("text_vectors").dim == 50


def test_shipped_vectors_if_present():
    from m3restore.weights import resolve

    bundle = open_bundle(resolve(None))
    if not bundle.has("text_vectors"):
        pytest.skip("the shipped bundle has no text_vectors")
    vectors = bundle.load("text_vectors")
    assert vectors.dim == 50
    assert "noisy" in [w for w, _ in vectors.similar("noise", 10)]

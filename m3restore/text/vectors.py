"""Word2Vec and Doc2Vec text vectors (the paper's Section 3.3), trained and shipped by this project.

Two 50-d gensim models trained on one corpus (recipe: :mod:`m3restore.training.vectors`):

* **Word2Vec** (skip-gram, negative sampling): one vector per word. A text's *sentence vector* is
  the mean of its known words' vectors; out-of-vocabulary words are skipped, and a text with no
  known word gets the zero vector.
* **Doc2Vec** (PV-DBOW, negative sampling): a text's *document vector* is inferred by gradient
  steps on a fresh paragraph vector against the frozen output layer. Inference here is
  deterministic: its start vector and negative samples come from a seed (and a CRC of the
  words), never from Python's randomised ``hash`` that gensim's ``infer_vector`` uses.

Both live in a weights bundle as the component ``text_vectors`` (:class:`TextVectors`): the
vocabulary, counts and training settings in ``config.json``, the arrays (word vectors, Doc2Vec
output weights) in ``model.safetensors``. Loading never unpickles anything: the gensim objects
needed for similarity queries and inference are rebuilt from those arrays.

:class:`VectorTextEncoder` offers the :class:`~m3restore.text.encoder.TextEncoder` interface
(``encode``/``entries``/``describe``) on these vectors: per-token Word2Vec vectors and the
Doc2Vec vector as the pooled vector, so a predictor built with ``text_dim=50`` can be
conditioned on them, as the paper compares. The shipped predictor uses MiniLM (384-d).
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from m3restore.errors import ConfigError

__all__ = ["TextVectors", "TextVectorsConfig", "VectorTextEncoder", "tokenize"]


def tokenize(text: str) -> list[str]:
    """The tokenisation used for the corpus and for queries: gensim's, lower case, accents folded."""
    from gensim.utils import simple_preprocess

    return simple_preprocess(text or "", deacc=True, min_len=1, max_len=30)


@dataclass
class TextVectorsConfig:
    """Vocabularies and the settings both models were trained with (all needed for inference)."""

    dim: int = 50
    vocab: list[str] = field(default_factory=list)  # Word2Vec words, in row order
    counts: list[int] = field(default_factory=list)
    doc_vocab: list[str] = field(default_factory=list)  # Doc2Vec words, in row order of its output layer
    doc_counts: list[int] = field(default_factory=list)
    window: int = 5
    negative: int = 5
    sample: float = 1e-3
    alpha: float = 0.025
    min_alpha: float = 0.0001
    infer_epochs: int = 50
    seed: int = 0
    corpus: dict[str, Any] = field(default_factory=dict)  # what the corpus held (recipe, sizes)

    def __post_init__(self) -> None:
        if len(self.vocab) != len(self.counts) or len(self.doc_vocab) != len(self.doc_counts):
            raise ValueError("vocab and counts must have the same length")
        if self.dim <= 0:
            raise ValueError("dim must be positive")


class TextVectors(nn.Module):
    """Word2Vec + Doc2Vec arrays as buffers (so a bundle stores them as safetensors)."""

    def __init__(self, config: TextVectorsConfig | None = None):
        super().__init__()
        self.config = config = config or TextVectorsConfig()
        self.register_buffer("word_vectors", torch.zeros(len(config.vocab), config.dim))
        self.register_buffer("doc_output", torch.zeros(len(config.doc_vocab), config.dim))
        self._index = {w: i for i, w in enumerate(config.vocab)}

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_gensim(cls, word2vec, doc2vec, **extra: Any) -> TextVectors:
        """Take the arrays out of trained gensim ``Word2Vec`` and ``Doc2Vec`` (PV-DBOW) models."""
        if not (doc2vec.dm == 0 and doc2vec.negative > 0 and not doc2vec.hs):
            raise ConfigError("Doc2Vec must be PV-DBOW (dm=0) with negative sampling and no hierarchical softmax")
        wv, dv = word2vec.wv, doc2vec.wv
        config = TextVectorsConfig(
            dim=int(wv.vector_size),
            vocab=list(wv.index_to_key),
            counts=[int(wv.get_vecattr(w, "count")) for w in wv.index_to_key],
            doc_vocab=list(dv.index_to_key),
            doc_counts=[int(dv.get_vecattr(w, "count")) for w in dv.index_to_key],
            window=int(doc2vec.window),
            negative=int(doc2vec.negative),
            sample=float(doc2vec.sample),
            alpha=float(doc2vec.alpha),
            min_alpha=float(doc2vec.min_alpha),
            seed=int(doc2vec.seed),
            **extra,
        )
        if doc2vec.vector_size != config.dim:
            raise ConfigError("Word2Vec and Doc2Vec must have the same vector size")
        module = cls(config)
        module.word_vectors.copy_(torch.from_numpy(np.asarray(wv.vectors, np.float32)))
        module.doc_output.copy_(torch.from_numpy(np.asarray(doc2vec.syn1neg, np.float32)))
        return module

    @property
    def dim(self) -> int:
        return self.config.dim

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self._index

    # -- Word2Vec ---------------------------------------------------------------------------
    def word_vector(self, word: str) -> np.ndarray:
        """The word's vector, or zeros for a word outside the vocabulary."""
        i = self._index.get(word)
        if i is None:
            return np.zeros(self.dim, np.float32)
        return self.word_vectors[i].numpy().copy()

    def sentence_vector(self, text: str | Sequence[str]) -> np.ndarray:
        """Mean of the known words' vectors; zeros when no word is known (or the text is empty)."""
        words = tokenize(text) if isinstance(text, str) else list(text)
        rows = [self._index[w] for w in words if w in self._index]
        if not rows:
            return np.zeros(self.dim, np.float32)
        return self.word_vectors[rows].mean(dim=0).numpy()

    @functools.cached_property
    def keyed_vectors(self):
        """A gensim ``KeyedVectors`` over the Word2Vec vectors (similarity queries, analogies)."""
        from gensim.models import KeyedVectors

        kv = KeyedVectors(vector_size=self.dim)
        kv.add_vectors(self.config.vocab, self.word_vectors.numpy().copy())
        for word, count in zip(self.config.vocab, self.config.counts):
            kv.set_vecattr(word, "count", count)
        return kv

    def similar(self, word: str, topn: int = 5) -> list[tuple[str, float]]:
        """Nearest words by cosine similarity; empty for an unknown word."""
        if word not in self._index:
            return []
        return [(w, float(s)) for w, s in self.keyed_vectors.most_similar(word, topn=topn)]

    # -- Doc2Vec ----------------------------------------------------------------------------
    @functools.cached_property
    def _doc_model(self):
        """A gensim Doc2Vec rebuilt from the stored arrays (no unpickling), ready for inference."""
        from gensim.models.doc2vec import Doc2Vec

        cfg = self.config
        model = Doc2Vec(
            vector_size=cfg.dim,
            dm=0,
            hs=0,
            negative=cfg.negative,
            window=cfg.window,
            sample=cfg.sample,
            alpha=cfg.alpha,
            min_alpha=cfg.min_alpha,
            min_count=1,
            seed=cfg.seed,
            workers=1,
        )
        model.build_vocab_from_freq(dict(zip(cfg.doc_vocab, cfg.doc_counts)))
        # Put the words back in the trained row order (ties in counts may have been reordered),
        # then rebuild the negative-sampling table for that order: same draws as in training.
        kv = model.wv
        order = np.array([kv.key_to_index[w] for w in cfg.doc_vocab], dtype=np.int64)
        kv.index_to_key = list(cfg.doc_vocab)
        kv.key_to_index = {w: i for i, w in enumerate(cfg.doc_vocab)}
        for name in list(kv.expandos):
            kv.expandos[name] = kv.expandos[name][order]
        kv.vectors = kv.vectors[order]
        model.make_cum_table()
        model.syn1neg = self.doc_output.numpy().copy()
        return model

    def doc_vector(
        self, text: str | Sequence[str], *, epochs: int | None = None, seed: int | None = None
    ) -> np.ndarray:
        """Doc2Vec vector of a text, deterministic for a given (text, seed); zeros if no word is known."""
        from gensim.models.doc2vec_inner import train_document_dbow

        words = tokenize(text) if isinstance(text, str) else list(text)
        model = self._doc_model
        words = [w for w in words if w in model.wv.key_to_index]
        if not words:
            return np.zeros(self.dim, np.float32)
        seed = self.config.seed if seed is None else int(seed)
        key = zlib.crc32(" ".join(words).encode("utf-8")) ^ seed
        model.random = np.random.RandomState(key & 0x7FFFFFFF)
        rng = np.random.default_rng(key)
        vector = ((rng.random((1, self.dim), dtype=np.float32) - 0.5) / self.dim).astype(np.float32)
        lockf = np.ones(1, dtype=np.float32)
        work = np.zeros(model.layer1_size, dtype=np.float32)
        epochs = epochs or self.config.infer_epochs
        alpha, min_alpha = self.config.alpha, self.config.min_alpha
        step = (alpha - min_alpha) / max(epochs - 1, 1)
        for _ in range(epochs):
            train_document_dbow(
                model,
                words,
                [0],
                alpha,
                work,
                learn_words=False,
                learn_hidden=False,
                doctag_vectors=vector,
                doctags_lockf=lockf,
            )
            alpha -= step
        return vector[0].copy()

    def forward(self, *args, **kwargs):  # pragma: no cover - a table of vectors, not a network
        raise TypeError("TextVectors is a table of vectors; use word_vector/sentence_vector/doc_vector")

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self.__dict__.pop("_doc_model", None)
        self.__dict__.pop("keyed_vectors", None)


class VectorTextEncoder:
    """The :class:`~m3restore.text.encoder.TextEncoder` interface on Word2Vec/Doc2Vec vectors.

    Tokens: the Word2Vec vectors of the text's known words (``max_tokens`` at most; a text with
    no known word still gets one zero token so it counts as present). Pooled: the Doc2Vec vector.
    Empty texts are absent, exactly as with the transformer encoder.
    """

    def __init__(self, vectors: TextVectors, *, max_tokens: int = 77, name: str = "word2vec+doc2vec-50"):
        self.vectors = vectors
        self.dim = vectors.dim
        self.max_tokens = int(max_tokens)
        self.name = name

    def describe(self) -> dict:
        return {"name": self.name, "dim": self.dim, "max_tokens": self.max_tokens}

    def entries(self, prompts: Sequence[str]):
        from m3restore.text.encoder import _check_prompts

        out = []
        for prompt in _check_prompts(prompts):
            if not prompt.strip():
                out.append(None)
                continue
            words = [w for w in tokenize(prompt) if w in self.vectors][: self.max_tokens]
            if words:
                tokens = torch.stack([torch.from_numpy(self.vectors.word_vector(w)) for w in words])
            else:
                tokens = torch.zeros(1, self.dim)
            out.append((tokens, torch.from_numpy(self.vectors.doc_vector(prompt))))
        return out

    def encode(self, prompts: Sequence[str]):
        from m3restore.text.encoder import _assemble

        return _assemble(self.entries(prompts), self.dim)

"""Train the 50-d Word2Vec and Doc2Vec text vectors (``m3restore train --stage vectors``).

The corpus recipe (:func:`build_corpus`), deterministic for a seed:

1. **Degradation descriptions** generated from the degradation registry
   (``m3restore.data.degrade.DEGRADATIONS``: every phrase, with every severity word and the
   synonyms the prompt merger understands, :data:`m3restore.caption.prompt.LEXICON`), combined
   with scene words (:data:`SCENES`) in a few sentence patterns — "a street photo with strong
   motion blur and mild noise", "the portrait is out of focus", …
2. **English text shipped inside gensim** (its test corpora: the Lee news corpus, its background
   corpus, Wikipedia paragraphs and movie-review sentences), so ordinary words have vectors too.

Both models are trained with one worker and a fixed seed, so the same gensim version and the
same seed give the same vectors bit for bit. The result is a :class:`TextVectors` component,
saved as ``<out>/bundle`` and, with ``add_to``, added to an existing bundle (the other
components stay untouched).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from m3restore.text.vectors import TextVectors, tokenize

#: Scene words for the generated descriptions (subjects of everyday photos).
SCENES = (
    "street city building house car road sign people person face portrait child dog cat bird flower "
    "tree forest mountain lake sea beach sky sunset night room kitchen office table book text document "
    "landscape garden park bridge river boat train station market shop window crowd concert stage "
    "animal horse field snow desert statue church painting poster screen phone laptop food plate"
).split()

#: gensim's shipped English corpora used (file name in gensim's test data, how to read it).
GENSIM_CORPORA = ("lee_background.cor", "lee.cor", "para2para_text1.txt", "para2para_text2.txt", "alldata-id-10.txt")

#: What each degradation looks like or comes from: gives its words contexts of their own, so
#: synonyms ("grainy", "noise") end up closer than different degradations ("noise", "blur").
CAUSES = {
    "motion-blur": (
        "the camera moved during the exposure",
        "streaks follow the direction of motion",
        "a shaky hand",
        "a moving subject and a slow shutter",
        "smeared along one direction",
        "camera shake while walking",
    ),
    "defocus": (
        "the lens focused on the wrong distance",
        "the autofocus missed the subject",
        "soft round bokeh discs",
        "a wide aperture and shallow depth of field",
        "the focus ring was off",
    ),
    "gaussian-blur": ("a smooth soft filter", "softened by a smoothing filter", "a gaussian kernel softened it"),
    "noise": (
        "a high iso setting on a small sensor",
        "speckles in the flat areas",
        "random grain over the sky",
        "coloured speckle in the shadows",
        "the sensor was pushed too far",
    ),
    "poisson": ("too few photons reached the sensor", "photon shot noise in dim areas", "a tiny sensor pixel"),
    "jpeg": (
        "blocks of eight by eight pixels",
        "ringing around sharp edges",
        "saved at a low quality setting",
        "compressed again for the web",
        "blocky banding in the gradients",
    ),
    "low-light": (
        "taken at night without a flash",
        "crushed shadows and a dim scene",
        "the exposure was far too short",
        "an underexposed indoor scene",
        "a dark evening street",
    ),
    "low-resolution": (
        "upscaled from a small thumbnail",
        "jagged staircase edges",
        "too few pixels for the print",
        "pixelated after enlarging",
        "a tiny video frame blown up",
    ),
    "missing-regions": (
        "parts of the picture are gone",
        "holes and scratches in an old print",
        "torn corners and lost patches",
        "damaged areas need inpainting",
        "masked out regions",
    ),
    "greyscale": ("no colour at all", "an old black and white film", "a monochrome print", "shot on grey film"),
}

_TEMPLATES = (
    "a {scene} photo with {deg}",
    "{deg} on a picture of a {scene}",
    "the {scene} image has {deg}",
    "photo of the {scene} with {deg}",
    "this {scene} shot suffers from {deg}",
    "remove the {deg} from this {scene} photo",
    "{deg}",
    "a {scene} with {deg}",
)


def _degradation_phrases() -> dict[str, list[str]]:
    """Registry name → phrases naming it (registry phrase first, then the merger's synonyms)."""
    from m3restore.caption.prompt import LEXICON
    from m3restore.data.degrade import DEGRADATIONS

    phrases: dict[str, list[str]] = {name: [entry.phrase] for name, entry in DEGRADATIONS.items()}
    for pattern, name in LEXICON:
        if name in phrases:
            phrases[name].append(" ".join(pattern))
    return phrases


def generated_descriptions(count: int, seed: int) -> list[str]:
    """``count`` sentences describing degraded scenes (see the module docstring)."""
    from m3restore.caption.prompt import SEVERITY_WORDS

    rng = np.random.default_rng(seed)
    phrases = _degradation_phrases()
    names = sorted(phrases)
    severity_words = {s: [w for w, v in SEVERITY_WORDS.items() if v == s] for s in ("mild", "moderate", "strong")}
    sentences = []
    for _ in range(count):
        k = int(rng.choice([1, 1, 2, 2, 3]))
        parts = []
        chosen = rng.choice(names, size=k, replace=False)
        for name in chosen:
            phrase = str(rng.choice(phrases[str(name)]))
            if name != "greyscale" and rng.random() < 0.85:
                severity = str(rng.choice(["mild", "moderate", "strong"]))
                word = severity if rng.random() < 0.6 else str(rng.choice(severity_words[severity]))
                phrase = f"{word} {phrase}"
            parts.append(phrase)
        deg = parts[0] if k == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
        template = str(rng.choice(_TEMPLATES))
        sentence = template.format(scene=str(rng.choice(SCENES)), deg=deg)
        if k == 1 and rng.random() < 0.7:  # one degradation: say why or how it shows
            sentence += " because " if rng.random() < 0.5 else ", "
            sentence += str(rng.choice(CAUSES.get(str(chosen[0]), ("it looks bad",))))
        sentences.append(sentence)
    return sentences


def gensim_corpus_lines() -> list[str]:
    """The English text lines of the corpora gensim ships (see :data:`GENSIM_CORPORA`)."""
    from gensim.test.utils import datapath

    lines = []
    for name in GENSIM_CORPORA:
        text = Path(datapath(name)).read_text(encoding="utf-8", errors="ignore")
        for line in text.splitlines():
            line = re.sub(r"^_\*\d+\s*", "", line).strip()  # alldata-id's document ids
            if line:
                lines.append(line)
    return lines


def build_corpus(seed: int = 0, descriptions: int = 6000, gensim_text: bool = True) -> tuple[list[list[str]], dict]:
    """Token lists for training, and a summary of what went in."""
    generated = [tokenize(s) for s in generated_descriptions(descriptions, seed)]
    shipped = [tokenize(s) for s in gensim_corpus_lines()] if gensim_text else []
    docs = [d for d in generated + shipped if d]
    summary = {
        "recipe": "m3restore.training.vectors.build_corpus",
        "seed": seed,
        "generated_descriptions": len(generated),
        "gensim_corpora": list(GENSIM_CORPORA) if gensim_text else [],
        "gensim_documents": len(shipped),
        "tokens": int(sum(len(d) for d in docs)),
    }
    return docs, summary


def train_vectors(
    docs: list[list[str]],
    *,
    dim: int = 50,
    seed: int = 0,
    epochs: int = 20,
    min_count: int = 2,
    window: int = 5,
    corpus: dict | None = None,
) -> TextVectors:
    """Train Word2Vec (skip-gram) and Doc2Vec (PV-DBOW) on ``docs``; one worker, seeded."""
    from gensim.models import Word2Vec
    from gensim.models.doc2vec import Doc2Vec, TaggedDocument

    common: dict[str, Any] = dict(
        vector_size=dim, window=window, min_count=min_count, negative=5, hs=0, seed=seed, workers=1, epochs=epochs
    )
    word2vec = Word2Vec(sentences=docs, sg=1, **common)
    tagged = [TaggedDocument(d, [i]) for i, d in enumerate(docs)]
    doc2vec = Doc2Vec(documents=tagged, dm=0, **common)
    return TextVectors.from_gensim(word2vec, doc2vec, corpus=corpus or {})


def run(out_dir: str | Path, *, seed: int = 0, epochs: int = 20, add_to: str | None = None, log=print) -> Path:
    """The ``--stage vectors`` entry point: corpus → models → ``<out>/bundle`` (+ ``add_to``)."""
    from m3restore.weights import extend_bundle, save_bundle

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    docs, summary = build_corpus(seed)
    log(f"corpus: {len(docs):,} documents, {summary['tokens']:,} tokens")
    vectors = train_vectors(docs, seed=seed, epochs=epochs, corpus=summary)
    seconds = time.perf_counter() - started
    log(f"trained Word2Vec + Doc2Vec ({len(vectors.config.vocab):,} words, {vectors.dim}-d) in {seconds:.0f} s")
    probes = {w: vectors.similar(w, 5) for w in ("blur", "noise", "dark", "jpeg", "street") if w in vectors}
    (out / "vectors.json").write_text(
        json.dumps(
            {"corpus": summary, "seconds": round(seconds, 1), "similar": probes, "vocab": len(vectors.config.vocab)},
            indent=2,
        )
        + "\n"
    )
    bundle = save_bundle(out / "bundle", {"text_vectors": vectors}, name="m3restore-text-vectors")
    if add_to:
        extend_bundle(add_to, {"text_vectors": vectors})
        log(f"added text_vectors to {add_to}")
    return bundle

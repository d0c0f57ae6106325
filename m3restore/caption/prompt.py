"""The prompt ``restore`` feeds the text encoder: user words + analyzer findings (+ content caption).

:func:`merge_prompt` builds it in the form the shipped predictor was trained on:

1. **Degradations**, as canonical registry phrases sorted alphabetically and comma-separated
   (``"mild noise, strong motion blur"``, see ``m3restore.training.prompts.canonical``):

   * start from the analyzer's detected findings (each with its severity);
   * degradations the user *names* (:data:`LEXICON`: "motion blur", "camera shake", "out of
     focus", "grainy", "jpg", "pixelated", "black and white", "very dark", …) are added, and
     the user's severity word, if any (:data:`SEVERITY_WORDS`: "slight" = mild, "heavy" =
     strong, …), wins over the analyzer's; without one the analyzer's severity is kept, or
     the bare phrase is used ("motion blur", as the real GoPro pairs were prompted in training)
     when the analyzer did not see it. A bare "blur"/"blurry" means the blur the analyzer
     found, else motion blur. When the user names a kind of blur, the analyzer's other blur
     guesses are dropped;
   * degradations the user *negates* ("no noise", "not blurry", "without jpeg artifacts") are
     removed even when the analyzer reported them.
2. **Content**: the user's remaining words after cleaning (stop words, URLs, emoji … removed by
   :mod:`m3restore.text.clean`), in their order, then the content captioner's caption (cleaned
   the same way), each as a further comma-separated part.

``auto=False`` (``restore --no-auto-prompt``) uses the user's text alone: cleaned and with its
degradation words put into the canonical form, but no analyzer and no captioner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m3restore.text.clean import CleanedText, clean_text

__all__ = ["LEXICON", "SEVERITY_WORDS", "MergedPrompt", "merge_prompt", "user_degradations"]

#: Word sequences (after cleaning and tokenisation) naming a degradation → registry name.
#: Longer patterns are matched first; "blur" alone is resolved by :func:`merge_prompt`.
LEXICON: tuple[tuple[tuple[str, ...], str], ...] = tuple(
    (tuple(words.split()), name)
    for words, name in (
        ("motion blur", "motion-blur"),
        ("motion blurred", "motion-blur"),
        ("motion blurry", "motion-blur"),
        ("camera shake", "motion-blur"),
        ("shaky", "motion-blur"),
        ("shake", "motion-blur"),
        ("out of focus", "defocus"),
        ("defocus blur", "defocus"),
        ("focus blur", "defocus"),
        ("defocus", "defocus"),
        ("defocused", "defocus"),
        ("unfocused", "defocus"),
        ("misfocused", "defocus"),
        ("gaussian blur", "gaussian-blur"),
        ("blurriness", "blur"),
        ("blurry", "blur"),
        ("blurred", "blur"),
        ("blur", "blur"),
        ("sensor noise", "noise"),
        ("noise", "noise"),
        ("noisy", "noise"),
        ("grainy", "noise"),
        ("grain", "noise"),
        ("jpeg compression artifacts", "jpeg"),
        ("jpeg compression artefacts", "jpeg"),
        ("compression artifacts", "jpeg"),
        ("compression artefacts", "jpeg"),
        ("jpeg artifacts", "jpeg"),
        ("jpeg artefacts", "jpeg"),
        ("jpeg", "jpeg"),
        ("jpg", "jpeg"),
        ("compression", "jpeg"),
        ("compressed", "jpeg"),
        ("blocky", "jpeg"),
        ("blockiness", "jpeg"),
        ("artifacts", "jpeg"),
        ("artefacts", "jpeg"),
        ("low light", "low-light"),
        ("lowlight", "low-light"),
        ("underexposed", "low-light"),
        ("dark", "low-light"),
        ("dim", "low-light"),
        ("low resolution", "low-resolution"),
        ("low res", "low-resolution"),
        ("lowres", "low-resolution"),
        ("pixelated", "low-resolution"),
        ("pixelation", "low-resolution"),
        ("missing regions", "missing-regions"),
        ("missing parts", "missing-regions"),
        ("holes", "missing-regions"),
        ("scratches", "missing-regions"),
        ("scratched", "missing-regions"),
        ("torn", "missing-regions"),
        ("black and white", "greyscale"),
        ("b w", "greyscale"),
        ("greyscale", "greyscale"),
        ("grayscale", "greyscale"),
        ("monochrome", "greyscale"),
    )
)

#: Intensity words → severity (they may stand up to two words before the degradation).
SEVERITY_WORDS = {
    "mild": "mild",
    "slight": "mild",
    "slightly": "mild",
    "light": "mild",
    "little": "mild",
    "bit": "mild",
    "minor": "mild",
    "faint": "mild",
    "subtle": "mild",
    "moderate": "moderate",
    "moderately": "moderate",
    "medium": "moderate",
    "some": "moderate",
    "noticeable": "moderate",
    "strong": "strong",
    "strongly": "strong",
    "heavy": "strong",
    "heavily": "strong",
    "severe": "strong",
    "severely": "strong",
    "very": "strong",
    "extreme": "strong",
    "extremely": "strong",
    "lots": "strong",
    "badly": "strong",
    "terrible": "strong",
    "really": "strong",
}

NEGATIONS = frozenset({"no", "not", "without", "never", "none", "free", "nor"})

_BLURS = ("motion-blur", "defocus", "gaussian-blur")
_PATTERNS = sorted(LEXICON, key=lambda item: -len(item[0]))


@dataclass
class Mention:
    """A degradation named in the user's text."""

    name: str  # registry name, or "blur" for an unspecified blur
    severity: str | None
    negated: bool
    words: tuple[int, ...]  # token positions it used (pattern, severity and negation words)


@dataclass
class MergedPrompt:
    """The prompt and where each part came from (for ``--verbose`` and ``caption --json``)."""

    prompt: str = ""
    degradations: dict[str, str | None] = field(default_factory=dict)  # name → severity (None: none given)
    sources: dict[str, str] = field(default_factory=dict)  # name → "analyzer", "user" or "user+analyzer"
    removed: list[str] = field(default_factory=list)  # names the user negated
    content: str = ""
    caption: str = ""
    user: CleanedText | None = None
    warnings: list[str] = field(default_factory=list)
    analysis: Any = None  # the analyzer's Analysis, when it ran

    @property
    def degradation_part(self) -> str:
        return _canonical_phrases(self.degradations)

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "degradations": self.degradation_part,
            "sources": dict(self.sources),
            "removed": list(self.removed),
            "content": self.content,
            "caption": self.caption,
            "keywords": list(self.user.keywords) if self.user else [],
            "corrections": dict(self.user.corrections) if self.user else {},
            "warnings": list(self.warnings),
            "analysis": self.analysis.to_dict() if self.analysis is not None else None,
        }


def user_degradations(tokens: list[str]) -> list[Mention]:
    """Degradations named in a cleaned token list (stop words still in), with severity and negation."""
    used: set[int] = set()
    mentions: list[Mention] = []
    i = 0
    while i < len(tokens):
        for pattern, name in _PATTERNS:
            n = len(pattern)
            if tuple(tokens[i : i + n]) == pattern and not used.intersection(range(i, i + n)):
                positions = list(range(i, i + n))
                severity, negated = None, False
                for j in range(i - 1, max(-1, i - 4), -1):  # up to three words back
                    word = tokens[j]
                    if j in used:
                        break
                    if word in SEVERITY_WORDS and severity is None:
                        severity = SEVERITY_WORDS[word]
                        positions.append(j)
                    elif word in NEGATIONS:
                        negated = True
                        positions.append(j)
                        break
                    elif word not in ("a", "an", "the", "of", "and", "or", "any", "much", "too", "with"):
                        break
                used.update(positions)
                mentions.append(Mention(name, severity, negated, tuple(sorted(positions))))
                i += n
                break
        else:
            i += 1
    return mentions


# Findings the analyzer may add to a prompt on its own. Low light is left to the user: brightening
# is an editorial choice, and on a night photo the analyzer's (correct) "low light" made the
# predictor brighten a dark scene from 24.8 to 6.4 dB (examples/rocket.png). Low resolution,
# missing regions and greyscale are not in the shipped predictor's training prompts. `caption`
# still reports every finding.
AUTO_PROMPT_LABELS = frozenset({"motion-blur", "defocus", "noise", "jpeg"})


def _canonical_phrases(degradations: dict[str, str | None]) -> str:
    from m3restore.data.degrade import DEGRADATIONS

    phrases = []
    for name, severity in degradations.items():
        words = DEGRADATIONS[name].phrase
        phrases.append(f"{severity} {words}" if severity and name != "greyscale" else words)
    return ", ".join(sorted(dict.fromkeys(phrases)))


def merge_prompt(
    user: str | CleanedText | None,
    analysis=None,
    caption: str | None = None,
    *,
    auto: bool = True,
    max_content_words: int = 16,
) -> MergedPrompt:
    """Build the prompt (see the module docstring). ``analysis`` is an analyzer ``Analysis`` or None."""
    cleaned = user if isinstance(user, CleanedText) else clean_text(user)
    merged = MergedPrompt(user=cleaned, warnings=list(cleaned.warnings))
    degradations: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    if auto and analysis is not None:
        for finding in analysis.detected:
            if finding.name not in AUTO_PROMPT_LABELS:
                continue
            degradations[finding.name] = finding.severity
            sources[finding.name] = "analyzer"
    mentions = user_degradations(cleaned.tokens) if cleaned.english else []
    for mention in mentions:
        name = mention.name
        if name == "blur":
            found = [b for b in _BLURS if b in degradations]
            name = found[0] if found else "motion-blur"
        if mention.negated:
            if name in degradations:
                merged.removed.append(name)
            degradations.pop(name, None)
            sources.pop(name, None)
            continue
        if name == "greyscale":
            severity = None
        else:
            severity = mention.severity or degradations.get(name)  # None: the bare phrase ("motion blur")
        sources[name] = "user+analyzer" if sources.get(name) == "analyzer" else "user"
        degradations[name] = severity
    named_blurs = {m.name for m in mentions if not m.negated and m.name in _BLURS}
    for other in _BLURS:  # the user said which blur it is: drop the analyzer's other guesses
        if named_blurs and other not in named_blurs and sources.get(other) == "analyzer":
            degradations.pop(other)
            sources.pop(other)
    merged.degradations = degradations
    merged.sources = sources

    consumed = {p for m in mentions for p in m.words}
    keep = set(cleaned.words)
    content = [t for i, t in enumerate(cleaned.tokens) if i not in consumed and t in keep]
    content = [t for t in content if t not in SEVERITY_WORDS and t not in NEGATIONS]
    merged.content = " ".join(content[:max_content_words])
    if auto and caption:
        cap = clean_text(caption, keywords=False)
        merged.caption = cap.text
    parts = [merged.degradation_part, merged.content, merged.caption]
    merged.prompt = ", ".join(p for p in parts if p)
    return merged


def describe_files(
    inputs,
    *,
    weights=None,
    captioner=None,
    prompt: str | None = None,
    recursive: bool = False,
    device: str = "auto",
    max_pixels: int | None = 100_000_000,
):
    """For ``m3restore caption``: yield ``(path, result dict or None, error or None)`` per image.

    The result holds the analyzer's findings, the content caption (None without a captioner)
    and the prompt ``restore`` would use for that image with ``prompt``.
    """
    from m3restore.caption.degradation import analyze
    from m3restore.errors import M3RestoreError, WeightsError
    from m3restore.io import list_images, list_unread, read_image, unread_message
    from m3restore.weights import open_bundle

    bundle = open_bundle(weights)
    if not bundle.has("analyzer"):
        raise WeightsError(
            f"{bundle.path} has no degradation analyzer; add one with `m3restore train --stage analyzer --add-to ...`"
        )
    analyzer = bundle.load("analyzer")
    if isinstance(captioner, str):
        from m3restore.caption.mllm import Captioner

        captioner = Captioner.load(captioner, device=device)
    cleaned = clean_text(prompt)
    images = list_images([*inputs], recursive=recursive)
    for path in list_unread([*inputs], recursive=recursive):
        yield path, None, unread_message(path)
    for path in images:
        try:
            image = read_image(path, max_pixels=max_pixels).rgb()
            analysis = analyze(analyzer, image)
            caption = captioner.caption(image) if captioner is not None else None
        except M3RestoreError as error:
            yield path, None, str(error)
            continue
        merged = merge_prompt(cleaned, analysis, caption)
        merged.analysis = analysis
        yield (
            path,
            {
                "file": str(path),
                "degradations": [f.to_dict() for f in analysis.detected],
                "summary": analysis.summary(),
                "content": caption,
                "captioner": getattr(captioner, "name", None),
                "prompt": merged.prompt,
                "warnings": merged.warnings,
            },
            None,
        )

"""Prompt cleaning (the paper's Section 3.2): from whatever a user typed to tidy English words.

Steps, in order (:func:`clean_text`):

1. **Length guard**: text beyond :data:`MAX_CHARS` characters is cut (at a word boundary) with a
   warning; the text encoder reads at most 77 tokens anyway.
2. **Noise removal**: HTML/XML markup and entities (gensim's ``strip_tags`` + ``html.unescape``),
   URLs, e-mail addresses, ``@handles``, emoji and other pictographic symbols (by Unicode
   category, so every emoji, flag and skin-tone modifier goes, present and future), control
   characters, and runs of punctuation.
3. **English tokenisation**: accents folded (gensim's ``deaccent``), lower case, words kept with
   their contractions (``don't`` → ``do`` + ``not``), numbers kept ("jpeg quality 30").
4. **Language check**: text in a non-Latin script, or whose words another language's dictionary
   (pyspellchecker ships French, German, Spanish, …) knows better than the English one, is
   flagged as not English.
5. **Spelling correction** with pyspellchecker's English frequency list plus a domain vocabulary
   of restoration terms (:data:`DOMAIN_WORDS`): ``bluury`` → ``blurry``, ``motoin`` → ``motion``,
   while ``jpeg``, ``defocus``, ``denoise``, ``deblur``, ``bokeh`` … are never "corrected".
   Words with digits, capitalised names in mid-sentence ("GoPro", "Paris") and short words are
   left alone; long words get at most two edits, others one.
6. **Stop-word removal** with gensim's English stop-word list, except negations and intensity
   words (``no``, ``not``, ``without``, ``very``, ``little`` …), which change what a prompt means
   for restoration ("no noise" is not "noise").
7. **Keywords** with YAKE (unsupervised, statistical; works offline on one sentence).

A prompt written only in lower-case restoration terms, as training prompts and the planner's
are, skips steps 2 to 6, which would leave it unchanged; it needs neither gensim nor
pyspellchecker. Nothing here loads a model; pyspellchecker's dictionaries load once per process
(~0.3 s).
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["CleanedText", "DOMAIN_WORDS", "MAX_CHARS", "clean_text", "domain_vocabulary", "spell_checker"]

#: Characters of prompt text looked at; the rest is cut with a warning.
MAX_CHARS = 1000

#: Longer "words" are dropped as junk (the longest common English words have about 20 letters).
MAX_WORD = 30

#: Restoration and photography terms that English spelling dictionaries lack or would "correct".
#: (Every word of the degradation registry's phrases is added to these at run time.)
DOMAIN_WORDS = frozenset(
    """
    blur blurs blurry blurred blurring blurriness deblur deblurred deblurring unblur sharpen sharpened
    defocus defocused defocussed unfocused misfocus misfocused bokeh focus
    noise noisy noisier denoise denoised denoising grain grainy graininess speckle speckled
    jpeg jpg jpegs mpeg compression compressed artefact artefacts artifact artifacts blocky blockiness
    macroblocking ringing banding posterization posterized aliasing aliased moire
    greyscale grayscale monochrome monochromatic desaturated colourless colorless sepia colorize colourise
    pixelated pixelation pixelly lowres hires upscale upscaled upscaling upsample upsampled downsample
    downsampled downscaled superresolution resolution
    underexposed overexposed underexposure exposure lowlight dim dark darker iso
    inpaint inpainting scratches scratched torn smudge smudged dehaze dehazing haze hazy derain rainy
    gaussian poisson sensor shake shaky handheld tripod
    photo photos photograph selfie gopro dslr smartphone webcam cctv dashcam scan scanned
    """.split()
)

#: Stop words that carry meaning for restoration and so are kept.
KEEP_WORDS = frozenset(
    "no not nor never none without neither very too much more most less least little few bit "
    "extremely slightly barely hardly somewhat quite rather really heavily badly lot lots".split()
)

_URL = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\b[\w.-]+\.(?:com|org|net|io|edu|gov|jpg|png)\b\S*", re.I)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
_HANDLE = re.compile(r"(?<!\w)[@#](\w+)")
_PLAIN_TERMS = re.compile(r"[a-z]+(?:[ ,]+[a-z]+)*")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d+(?:\.\d+)?")
_CONTRACTIONS = {"n't": "not", "'re": "are", "'ve": "have", "'ll": "will", "'m": "am", "'d": "would", "'s": ""}
_IRREGULAR_NEG = {"can't": "can not", "won't": "will not", "shan't": "shall not", "ain't": "is not"}
_OTHER_LANGUAGES = ("fr", "de", "es", "it", "pt", "nl")
_LANGUAGE_NAMES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch"}


@dataclass
class CleanedText:
    """The result of :func:`clean_text`.

    ``text`` is the cleaned prompt (words joined by spaces; empty when nothing usable is left);
    ``tokens`` are all words after spelling correction, *before* stop-word removal (what phrase
    matching needs); ``words`` are those after stop-word removal; ``keywords`` are YAKE's,
    best first; ``corrections`` maps a misspelt word to its correction; ``english`` is False
    when the text does not look like English; ``warnings`` are one-line messages for the user.
    """

    original: str
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)
    english: bool = True
    language: str | None = None
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.text


@functools.lru_cache(maxsize=1)
def domain_vocabulary() -> frozenset[str]:
    """:data:`DOMAIN_WORDS` plus every word of the degradation registry's phrases and names."""
    from m3restore.data.degrade import DEGRADATIONS

    words = set(DOMAIN_WORDS)
    for name, entry in DEGRADATIONS.items():
        words.update(re.findall(r"[a-z]+", entry.phrase.lower()))
        words.update(re.findall(r"[a-z]+", name.lower()))
    words.update(("mild", "moderate", "strong", "severe", "heavy", "slight", "light"))
    return frozenset(words)


@functools.lru_cache(maxsize=1)
def spell_checker():
    """pyspellchecker's English checker with the domain vocabulary added (frequent, so it wins)."""
    from spellchecker import SpellChecker

    checker = SpellChecker(language="en", distance=2, case_sensitive=False)
    checker.word_frequency.load_words(sorted(domain_vocabulary()))
    # load_words counts each word once; give domain words a count that beats common lookalikes,
    # shorter ones first ("blurr" -> "blur", not "blurs").
    counts = checker.word_frequency.dictionary
    for word in domain_vocabulary():
        counts[word] = 10**8 - 10**6 * len(word) + min(counts.get(word, 0), 10**6 - 1)
    return checker


@functools.lru_cache(maxsize=8)
def _other_checker(language: str):
    from spellchecker import SpellChecker

    return SpellChecker(language=language, distance=1)


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from gensim.parsing.preprocessing import STOPWORDS

    return frozenset(STOPWORDS) - KEEP_WORDS - domain_vocabulary()


def _is_pictograph(ch: str) -> bool:
    """Emoji and other symbols/pictographs, modifiers, joiners and variation selectors."""
    cat = unicodedata.category(ch)
    if cat in ("So", "Sk", "Cs", "Co", "Cn", "Cc"):
        return ch not in "\n\t"
    if cat == "Cf":  # zero-width joiner, direction marks, tag characters (flags)
        return True
    if cat == "Mn" and (0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF or 0x1F3FB <= ord(ch) <= 0x1F3FF):
        return True
    return 0x1F000 <= ord(ch) <= 0x1FAFF  # emoji blocks whose code points are still unassigned here


def _strip_noise(text: str) -> tuple[str, int]:
    """Markup, URLs, e-mails, handles and pictographs out; returns the text and #pictographs removed."""
    from gensim.parsing.preprocessing import strip_tags

    text = html.unescape(strip_tags(text))
    text = strip_tags(text)  # markup that was entity-escaped the first time round
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _HANDLE.sub(lambda m: " " + m.group(1) + " " if m.group(0)[0] == "#" else " ", text)
    kept, dropped = [], 0
    for ch in text:
        if _is_pictograph(ch):
            dropped += 1
            kept.append(" ")
        else:
            kept.append(ch)
    return "".join(kept), dropped


def _proper_nouns(text: str) -> set[str]:
    """Lower-cased words written with a capital inside a sentence (names: GoPro, Paris, iPhone)."""
    names = set()
    for sentence in re.split(r"[.!?]\s+|\n", text):
        words = re.findall(r"[A-Za-z][A-Za-z']*", sentence)
        for i, word in enumerate(words):
            inner_cap = any(c.isupper() for c in word[1:]) and not word.isupper()
            if (i > 0 and word[0].isupper() and not word.isupper()) or inner_cap:
                names.add(word.lower())
    return names


def _tokenize(text: str) -> list[str]:
    from gensim.utils import deaccent

    text = deaccent(text).lower().replace("\u2019", "'").replace("`", "'")
    for word, expansion in _IRREGULAR_NEG.items():
        text = re.sub(rf"\b{word}\b", expansion, text)
    tokens: list[str] = []
    for token in _TOKEN.findall(text):
        if len(token) > MAX_WORD:  # no English word is this long: keyboard mashing, base64, hashes
            continue
        if "'" in token:
            for suffix, expansion in _CONTRACTIONS.items():
                if token.endswith(suffix) and len(token) > len(suffix):
                    tokens.append(token[: -len(suffix)])
                    if expansion:
                        tokens.append(expansion)
                    break
            else:
                tokens.extend(t for t in token.split("'") if t)
        else:
            tokens.append(token)
    return tokens


def _non_latin_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, "") or ch.isascii())
    return 1.0 - latin / len(letters)


def _guess_language(words: list[str]) -> tuple[bool, str | None]:
    """(looks English?, best other language code). Only alphabetic words of 2+ letters count.

    A word counts for English when the English dictionary (plus the domain vocabulary) knows it;
    another language wins when its dictionary knows clearly more of the words. Failing that the
    text is English when most words are known or one edit away from a known word (typos).
    """
    words = [w for w in words if w.isalpha() and len(w) > 1]
    if not words:
        return True, None
    checker = spell_checker()
    vocab = domain_vocabulary()
    known = [w in vocab or w in checker for w in words]
    english = sum(known) / len(words)
    if english >= 0.8:
        return True, None
    best, best_share = None, english
    for code in _OTHER_LANGUAGES:  # most likely first; stop at a clear winner (each costs ~0.3 s to load)
        try:
            other = _other_checker(code)
        except (ValueError, OSError):  # pragma: no cover - a language file missing from the install
            continue
        share = sum(1 for w in words if w in other) / len(words)
        if share > best_share + 0.15:
            best, best_share = code, share
            if share >= 0.8:
                break
    if best is not None:
        return False, best
    checker.distance = 1
    near = sum(1 for w, k in zip(words, known) if k or checker.known(checker.edit_distance_1(w))) / len(words)
    return near >= 0.5, None


def _correct(tokens: list[str], protected: set[str]) -> tuple[list[str], dict[str, str]]:
    checker = spell_checker()
    vocab = domain_vocabulary()
    out, corrections = [], {}
    for token in tokens:
        if (
            token in vocab
            or token in protected
            or len(token) < 4
            or not token.isalpha()
            or token in _stopwords()
            or token in checker
        ):
            out.append(token)
            continue
        checker.distance = 2 if len(token) >= 8 else 1
        fixed = checker.correction(token)
        if fixed and fixed != token and fixed.isalpha():
            corrections[token] = fixed
            out.append(fixed)
        else:
            out.append(token)
    return out, corrections


def _keywords(tokens: list[str], stop: frozenset[str], top: int = 5) -> list[str]:
    """YAKE keywords (1-3 words), best first, from the corrected tokens *with* their stop words
    (YAKE uses them to tell where a candidate phrase ends); the content words if YAKE fails."""
    content = [t for t in tokens if t not in stop and t.isalpha()]
    if not content:
        return []
    try:
        import yake

        extractor = yake.KeywordExtractor(lan="en", n=3, dedupLim=0.7, top=top)
        found = [kw for kw, _score in extractor.extract_keywords(" ".join(tokens))]
    except Exception:  # noqa: BLE001 - keywords are a convenience; never fail a restore over them
        found = []
    return found or list(dict.fromkeys(content))[:top]


def _restoration_terms(text: str) -> list[str] | None:
    """The words of a prompt written only in lower-case restoration terms, the way training
    prompts and the planner's are ("strong motion blur, mild noise"); None for anything else.

    Such a prompt comes out of the full cleaning unchanged (domain words are neither stop words
    nor corrected), so it skips that work and needs neither gensim nor pyspellchecker.
    """
    if not _PLAIN_TERMS.fullmatch(text.strip()):
        return None
    words = re.findall(r"[a-z]+", text)
    vocab = domain_vocabulary()
    return words if all(w in vocab for w in words) else None


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[:limit]
    space = head.rfind(" ")
    return head[:space] if space > limit // 2 else head


def clean_text(text: str | None, *, max_chars: int = MAX_CHARS, keywords: bool = True) -> CleanedText:
    """Clean one prompt (see the module docstring). Never raises for odd input; warns instead."""
    original = "" if text is None else str(text)
    result = CleanedText(original=original)
    if not original.strip():
        return result
    work = original
    if len(work) > max_chars:
        work = _cut(work, max_chars)
        result.truncated = True
        result.warnings.append(
            f"the prompt is {len(original):,} characters long; only its first {len(work):,} are used "
            "(the text encoder reads at most 77 tokens)"
        )
    tokens = _restoration_terms(work)
    if tokens is not None:  # nothing to strip, no language to guess, nothing to correct
        result.tokens, result.words, result.text = tokens, list(tokens), " ".join(tokens)
        if keywords:
            result.keywords = _keywords(tokens, frozenset())
        return result
    stripped, pictographs = _strip_noise(work)
    if _non_latin_share(stripped) > 0.5:
        result.english = False
        result.warnings.append(
            "the prompt is not in English (non-Latin script); m3restore's prompts are English, so it was left out"
        )
        return result
    tokens = _tokenize(stripped)
    if not any(t.isalpha() for t in tokens):
        if pictographs:
            result.warnings.append("the prompt has only emoji or symbols, no words; it was left out")
        elif tokens:
            result.warnings.append("the prompt has only numbers, no words; it was left out")
        else:
            result.warnings.append("the prompt has no words after cleaning; it was left out")
        return result
    english, language = _guess_language(tokens)
    if not english:
        result.english = False
        result.language = language
        looks = f" (it looks like {_LANGUAGE_NAMES.get(language, language)})" if language else ""
        result.warnings.append(
            f"the prompt does not look like English{looks}; m3restore's prompts are English, so it was left out"
        )
        return result
    tokens, corrections = _correct(tokens, _proper_nouns(stripped))
    result.tokens = tokens
    result.corrections = corrections
    stop = _stopwords()
    result.words = [t for t in tokens if t not in stop and (len(t) > 1 or t.isdigit())]
    result.text = " ".join(result.words)
    if keywords:
        result.keywords = _keywords(tokens, stop)
    return result

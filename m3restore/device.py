"""Device and dtype policy.

``auto`` means CUDA with fp16 when a GPU is present, otherwise the CPU in fp32. bf16 is
available on request on both (on a CPU without bf16 instructions it is slow, with a warning).
Asking for CUDA on a machine without it is an error, never a silent fallback: a user who typed
``--device cuda`` wants to know.
"""

from __future__ import annotations

import warnings

import torch

from m3restore.errors import DeviceError, unknown_choice

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` → a usable :class:`torch.device`."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"--device {name}: not a valid CUDA device name (use cuda or cuda:N)") from None
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    raise DeviceError(unknown_choice("--device", name, ("auto", "cpu", "cuda", "cuda:N")))


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` | ``fp32`` | ``fp16`` | ``bf16`` for ``device``.

    fp16 is refused on the CPU: PyTorch's CPU kernels are slow or missing for half precision,
    so it would only make a run slower and less accurate.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if name not in DTYPES:
        raise DeviceError(unknown_choice("--dtype", name, ("auto", *DTYPES)))
    if name == "fp16" and device.type != "cuda":
        raise DeviceError("--dtype fp16 needs a CUDA device; on the CPU use fp32 or bf16")
    if name == "bf16" and device.type == "cpu" and cpu_has_bf16() is False:
        warnings.warn(
            "this CPU has no bf16 instructions (AVX-512 BF16 or AMX), so --dtype bf16 runs several "
            "times slower than fp32 here (11x in docs/SPEED_AVX2.md); use --dtype fp32",
            UserWarning,
            stacklevel=2,
        )
    return DTYPES[name]


def cpu_has_bf16() -> bool | None:
    """Whether the CPU has bf16 instructions (AVX-512 BF16 or AMX); None where torch cannot tell."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [probe for probe in probes if callable(probe)]
    return any(probe() for probe in probes) if probes else None


def all_finite(tensor: torch.Tensor) -> bool:
    """True when no element is NaN or ±Inf (the fp16 overflow guard checks this per tile)."""
    return bool(torch.isfinite(tensor).all())


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"

"""Is bf16 autocast usable for training on this CPU? Speed and gradient error against fp32.

    python benchmarks/train_precision.py [--weights m3restore-denoise] [--repeats 3] [--out docs/TRAIN_PRECISION.md]

One batch of noisy 128-px crops (8 of them, sigma 5-55, made here from a fixed seed) goes
through the bundle's predictor forward and backward with the training loss, in fp32 and under
``torch.autocast("cpu", torch.bfloat16)``, on one thread, the two interleaved so that both see
the same machine load. Printed: seconds per step of each and their ratio; the relative error of
the whole bf16 gradient against the fp32 one on every repeat (it should be about the same small
number each time); and the parameters whose own gradient is furthest off, with their layer.
The same lines go to ``--out`` with the torch version and the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from m3restore.training.losses import multiscale_loss
from m3restore.weights import open_bundle

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cpu_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="m3restore-denoise")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/TRAIN_PRECISION.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    net = open_bundle(args.weights).load("predictor").float().train()
    modules = dict(net.named_modules())
    gen = torch.Generator().manual_seed(0)
    # smooth random images: upsampled noise, so the crops have structure at several scales
    clean = torch.nn.functional.interpolate(torch.rand(8, 3, 16, 16, generator=gen), size=128, mode="bicubic")
    clean = clean.clamp(0, 1)
    sigma = torch.linspace(5, 55, 8).view(8, 1, 1, 1) / 255
    noisy = (clean + sigma * torch.randn(clean.shape, generator=gen)).contiguous(memory_format=torch.channels_last)

    def step(bf16: bool) -> tuple[float, dict[str, torch.Tensor]]:
        net.zero_grad(set_to_none=True)
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outputs = net(noisy, None, scales=True)
        loss = multiscale_loss([o.float() for o in outputs], clean, (1.0, 0.5, 0.25), "psnr")
        loss.backward()
        seconds = time.perf_counter() - started
        return seconds, {n: p.grad.detach().clone() for n, p in net.named_parameters() if p.grad is not None}

    step(False), step(True)  # warm-up: oneDNN picks and caches its kernels
    times: dict[bool, list[float]] = {False: [], True: []}
    errors: list[float] = []
    worst: dict[str, float] = {}
    for _ in range(args.repeats):
        t32, g32 = step(False)
        t16, g16 = step(True)
        times[False].append(t32)
        times[True].append(t16)
        flat32 = torch.cat([g.flatten() for g in g32.values()])
        flat16 = torch.cat([g16[n].flatten() for n in g32])
        errors.append(((flat16 - flat32).norm() / flat32.norm()).item())
        for name, g in g32.items():
            err = ((g16[name] - g).norm() / (g.norm() + 1e-12)).item()
            worst[name] = max(worst.get(name, 0.0), err if err == err else float("inf"))  # NaN counts as inf
    fp32, bf16 = sorted(times[False])[len(times[False]) // 2], sorted(times[True])[len(times[True]) // 2]
    lines = [
        f"train step, batch 8 x 128 px, one thread: fp32 {fp32:.3f} s, bf16 {bf16:.3f} s, ratio {fp32 / bf16:.2f}",
        "whole-gradient relative error of bf16, per repeat: " + ", ".join(f"{e:.4g}" for e in errors),
        "parameters furthest off:",
    ]
    for name, err in sorted(worst.items(), key=lambda kv: -kv[1])[:8]:
        lines.append(f"  {err:10.4g}  {name}  ({modules[name.rsplit('.', 1)[0]]})")
    print("\n".join(lines))
    cpu = cpu_model()
    header = "# bf16 autocast for training on the CPU\n\nWritten by `benchmarks/train_precision.py` "
    header += f"(weights {args.weights}, torch {torch.__version__}, {cpu}, {args.repeats} repeats).\n\n"
    args.out.write_text(header + "```\n" + "\n".join(lines) + "\n```\n", encoding="utf-8")


if __name__ == "__main__":
    main()

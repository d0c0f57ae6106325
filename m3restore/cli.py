"""The `m3restore` command line: thin commands over the library.

Heavy imports (torch, transformers) happen inside the commands, so `m3restore --help` is fast.
Errors the user can fix (:class:`M3RestoreError`) print one line and exit non-zero.
"""

from __future__ import annotations

import functools
import sys
import warnings
from pathlib import Path

import typer
from rich.console import Console

from m3restore.errors import M3RestoreError

app = typer.Typer(
    name="m3restore",
    help="Text-guided image restoration with the M3-UNet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def friendly(fn):
    """Turn library errors into one line and an exit code; warnings into one line each."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.showwarning = lambda msg, cat, *a, **k: console.print(f"[yellow]warning:[/] {msg}", soft_wrap=True)
            try:
                return fn(*args, **kwargs)
            except M3RestoreError as error:
                fail(str(error))
            except KeyboardInterrupt:
                fail("interrupted", 130)
            except MemoryError:
                fail("out of memory: lower --tile (e.g. --tile 512)")

    return wrapper


# -- restore ----------------------------------------------------------------------------------
@app.command()
@friendly
def restore(
    inputs: list[Path] = typer.Argument(..., help="Image files and/or folders."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output file (one input) or folder."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="What the image shows or what is wrong with it."),
    seed: int | None = typer.Option(None, help="Random seed (for stochastic steps)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16."),
    tile: str = typer.Option("auto", help="Tile side in pixels, 0 for none, or auto (fits a memory budget)."),
    weights: str | None = typer.Option(None, help="Weights bundle: a folder or an installed name."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    suffix: str = typer.Option("_restored", help="Added to output names when writing into a folder."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    max_pixels: int = typer.Option(100_000_000, help="Refuse images with more pixels (decompression-bomb guard)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the prompt used and timings."),
):
    """Restore one image, many images, or whole folders."""
    from m3restore.pipeline import batch

    if max_pixels <= 0:
        fail(f"--max-pixels {max_pixels}: must be positive", 2)
    report = batch.restore_paths(
        inputs,
        output,
        prompt=prompt,
        seed=seed,
        device=device,
        dtype=dtype,
        tile=tile,
        weights=weights,
        recursive=recursive,
        suffix=suffix,
        overwrite=overwrite,
        max_pixels=max_pixels,
        verbose=verbose,
        console=console,
    )
    if report.failed:
        raise typer.Exit(1)


# -- info -------------------------------------------------------------------------------------
@app.command()
@friendly
def info(weights: str | None = typer.Option(None, help="Weights bundle: a folder or an installed name.")):
    """Show the weights bundle, its components, the device and library versions."""
    import platform

    import torch
    from rich.table import Table

    import m3restore
    from m3restore.device import describe, resolve_device
    from m3restore.weights import available_bundles, open_bundle, search_path

    table = Table(title="m3restore", show_header=False)
    table.add_row("version", m3restore.__version__)
    table.add_row("python / torch", f"{platform.python_version()} / {torch.__version__}")
    table.add_row("device (auto)", describe(resolve_device("auto")))
    table.add_row("weights search path", "\n".join(map(str, search_path())))
    table.add_row("installed bundles", ", ".join(p.name for p in available_bundles()) or "none")
    out.print(table)
    bundle = open_bundle(weights)
    t = Table(title=f"bundle {bundle.name} ({bundle.path})")
    for col in ("component", "class", "parameters", "config"):
        t.add_column(col)
    for name, entry in bundle.index["components"].items():
        cfg = bundle.config(name)
        short = ", ".join(
            f"{k}={v}" for k, v in cfg.items() if k in ("width", "dilation", "fusion", "patch", "middle_blocks")
        )
        t.add_row(name, entry["class"], f"{entry['parameters']:,}", short)
    out.print(t)
    te = bundle.index.get("text_encoder")
    if te:
        out.print(f"text encoder: {te.get('name')} ({te.get('dim')}-d)")
    tr = bundle.index.get("training")
    if tr:
        out.print(
            f"trained: recipe {tr.get('recipe')}, {tr.get('iterations')} iterations, "
            f"{tr.get('wall_time_s')} s on {tr.get('device')}, validation PSNR {tr.get('val_psnr')} dB"
        )


# -- train ------------------------------------------------------------------------------------
@app.command(context_settings={"allow_extra_args": False})
@friendly
def train(
    config: Path | None = typer.Option(None, help="YAML/JSON training config."),
    recipe: str | None = typer.Option(None, help="paper, cpu or gpu (see m3restore.training.recipes)."),
    dataset: str | None = typer.Option(None, help="gopro, realblur-j, realblur-r, hide, pairs or clean."),
    root: str | None = typer.Option(None, help="Dataset root folder."),
    input: str | None = typer.Option(None, "--input", help="Degraded images (with --dataset pairs)."),
    target: str | None = typer.Option(None, "--target", help="Sharp images (with --dataset pairs)."),
    degrade: str | None = typer.Option(None, help='Synthetic degradations, e.g. "motion-blur,noise:0-50,jpeg:10-90".'),
    out_dir: Path | None = typer.Option(None, "--out", help="Run folder (checkpoints, logs, bundle)."),
    resume: Path | None = typer.Option(None, help="Continue the run in this folder exactly."),
    init: str | None = typer.Option(None, help="Warm start from a weights bundle."),
    iterations: int | None = typer.Option(None, help="Total iterations."),
    batch_size: int | None = typer.Option(None, help="Batch size."),
    crop: int | None = typer.Option(None, help="Training crop size."),
    lr: float | None = typer.Option(None, help="Learning rate."),
    seed: int | None = typer.Option(None, help="Random seed."),
    time_limit: float | None = typer.Option(None, help="Stop (checkpoint + export) after this many minutes."),
    text_cache: str | None = typer.Option(None, help="Precomputed text embeddings (safetensors)."),
    stage: str = typer.Option("predictor", help="predictor (more stages arrive with the refiner and text issues)."),
):
    """Train the predictor (accelerate: `accelerate launch -m m3restore train ...` for many GPUs)."""
    from m3restore.training.cli_config import build_config
    from m3restore.training.loop import train as run_training

    if resume is not None:
        run_dir = resume
        cfg = None
    else:
        if out_dir is None:
            fail("--out DIR is required (or --resume DIR)", 2)
        run_dir = out_dir
        cfg = build_config(
            config=config,
            recipe=recipe,
            stage=stage,
            dataset=dataset,
            root=root,
            input=input,
            target=target,
            degrade=degrade,
            overrides=dict(
                iterations=iterations,
                batch_size=batch_size,
                crop=crop,
                lr=lr,
                seed=seed,
                time_limit_minutes=time_limit,
                text_cache=text_cache,
            ),
        )
    bundle = run_training(
        cfg, run_dir, resume=resume is not None, init=init, log=lambda m: console.print(m, soft_wrap=True)
    )
    out.print(f"bundle written to {bundle}")


# -- eval / caption ---------------------------------------------------------------------------
@app.command(name="eval")
@friendly
def eval_(
    input: Path = typer.Option(..., "--input", help="Restored or degraded images."),
    target: Path = typer.Option(..., "--target", help="Ground-truth images, matched by file name."),
):
    """Score images against ground truth (PSNR/SSIM, RGB, 8-bit)."""
    import numpy as np

    from m3restore.data.datasets import folder_pairs
    from m3restore.io import read_image
    from m3restore.metrics.quality import psnr, quantize, ssim

    rows = []
    for pair in folder_pairs(input, target):
        a, b = read_image(pair.input).rgb(), read_image(pair.target).rgb()
        rows.append((pair.name, psnr(quantize(a), quantize(b)), ssim(quantize(a), quantize(b))))
        out.print(f"{pair.name}: PSNR {rows[-1][1]:.2f} dB · SSIM {rows[-1][2]:.4f}")
    out.print(
        f"mean over {len(rows)}: PSNR {np.mean([r[1] for r in rows]):.2f} dB · SSIM {np.mean([r[2] for r in rows]):.4f}"
    )


@app.command()
@friendly
def caption(inputs: list[Path] = typer.Argument(..., help="Images to describe.")):
    """Say what is wrong with an image (needs a bundle with a degradation analyzer)."""
    from m3restore.weights import open_bundle

    bundle = open_bundle(None)
    if not bundle.has("analyzer"):
        fail(f"{bundle.path} has no degradation analyzer yet; captions need one (see the Text issue)")


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        console.print("[bold red]error:[/] interrupted")
        sys.exit(130)

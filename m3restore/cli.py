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
from rich.markup import escape

from m3restore.errors import M3RestoreError, unknown_choice

app = typer.Typer(
    name="m3restore",
    help="Text-guided image restoration with the M3-UNet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, highlight=False)
PARTIAL_EXIT = 3  # restored, but a planned step could not be done by any installed model
DEFAULT_STEPS = 0  # predictor only: see README "Diffusion refinement" for the measurements behind it
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
    output: str | None = typer.Option(  # a str keeps the trailing slash that makes "out/" a folder
        None, "-o", "--output", help="Output file (one input) or folder (an existing one, or a path ending in /)."
    ),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="What the image shows or what is wrong with it."),
    seed: int | None = typer.Option(None, help="Random seed (for stochastic steps)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16."),
    tile: str = typer.Option("auto", help="Tile side in pixels, 0 for none, or auto (fits a memory budget)."),
    ensemble: int = typer.Option(
        1, help="Average the predictor over 1, 2, 4 or 8 flipped/transposed views (N times slower, sharper)."
    ),
    weights: str | None = typer.Option(None, help="Weights bundle: a folder or an installed name."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    suffix: str = typer.Option("_restored", help="Added to output names when writing into a folder."),
    ext: str | None = typer.Option(
        None,
        help="Output format when writing into a folder or beside the input (png, jpg, tif, webp, bmp); "
        "default: the input's own (JPEG is written at quality 95, 4:4:4). A named output file's extension must agree.",
    ),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
    max_pixels: int = typer.Option(100_000_000, help="Refuse images with more pixels (decompression-bomb guard)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the prompt used and timings."),
    text_encoder: str | None = typer.Option(
        None, help="Text encoder (name or folder); must be the one the weights were trained with."
    ),
    no_auto_prompt: bool = typer.Option(
        False, "--no-auto-prompt", help="Use your --prompt alone: no degradation analyzer, no captioner."
    ),
    captioner: str | None = typer.Option(
        None, help="Image captioner (Hugging Face id or folder) whose caption joins the prompt."
    ),
    steps: int = typer.Option(
        DEFAULT_STEPS, help="Diffusion refiner steps after the predictor; 0 = predictor only (fastest)."
    ),
    sampler: str = typer.Option("dpm-solver++", help="Refiner sampler: ddim, dpm-solver++ or euler."),
    samples: int = typer.Option(1, help="Refiner samples to average (needs --steps > 0)."),
    guidance: float = typer.Option(1.0, help="Classifier-free guidance on the text (1 = none; refiner only)."),
    uncertainty: Path | None = typer.Option(
        None, help="Write the per-pixel std of the samples as a colour map (file, or folder for many inputs)."
    ),
    plan: str | None = typer.Option(
        None,
        help="auto (the default: detect, order, choose, verify), none (one all-in-one pass) or steps, "
        "e.g. denoise,deblur.",
        show_default=False,
    ),
    explain: bool = typer.Option(False, "--explain", help="Print each image's plan: steps, models, why, checks."),
    mask: Path | None = typer.Option(None, help="Image whose white pixels mark missing regions (for inpaint)."),
):
    """Restore one image, many images, or whole folders."""
    from m3restore.io import check_output_ext
    from m3restore.pipeline import batch
    from m3restore.pipeline.ensemble import check_ensemble
    from m3restore.pipeline.planner import parse_plan
    from m3restore.pipeline.restore import Sampling

    if max_pixels <= 0:
        fail(f"--max-pixels {max_pixels}: must be positive", 2)
    try:
        parsed = parse_plan(plan or "auto")
    except M3RestoreError as error:
        fail(str(error), 2)
    if no_auto_prompt and parsed == "auto":
        plan = "none"  # without the analyzer there is nothing to plan from
    elif no_auto_prompt and parsed != "none":
        fail("--plan with steps verifies each one with the analyzer; drop --no-auto-prompt", 2)
    try:
        sampling = Sampling(steps=steps, sampler=sampler, samples=samples, guidance=guidance)
        check_ensemble(ensemble)
        check_output_ext(ext)
    except M3RestoreError as error:
        fail(str(error), 2)
    report = batch.restore_paths(
        inputs,
        output,
        prompt=prompt,
        seed=seed,
        device=device,
        dtype=dtype,
        tile=tile,
        ensemble=ensemble,
        weights=weights,
        recursive=recursive,
        suffix=suffix,
        ext=ext,
        overwrite=overwrite,
        max_pixels=max_pixels,
        verbose=verbose,
        console=console,
        text_encoder=text_encoder,
        auto_prompt=not no_auto_prompt,
        captioner=captioner,
        sampling=sampling,
        uncertainty=uncertainty,
        plan=plan,
        explain=explain,
        mask=mask,
    )
    if report.failed:
        raise typer.Exit(1)
    if report.partial:
        raise typer.Exit(PARTIAL_EXIT)


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
    for col in ("component", "class", "parameters", "stored as", "config"):
        t.add_column(col)
    for name, entry in bundle.index["components"].items():
        cfg = bundle.config(name)
        short = ", ".join(
            f"{k}={v}" for k, v in cfg.items() if k in ("width", "dilation", "fusion", "patch", "middle_blocks")
        )
        t.add_row(name, entry["class"], f"{entry['parameters']:,}", entry.get("storage", "float32"), short)
    out.print(t)
    te = bundle.index.get("text_encoder")
    if te:
        out.print(f"text encoder: {te.get('name')} ({te.get('dim')}-d)")
    tr = bundle.index.get("training")
    if tr:
        averaged = f", the mean of {len(tr['average_of'])} runs" if tr.get("average_of") else ""
        out.print(
            f"trained: recipe {tr.get('recipe')}, {tr.get('iterations')} iterations, "
            f"{tr.get('wall_time_s')} s on {tr.get('device')}{averaged}{_validation(tr)}",
            soft_wrap=True,
        )
        legs = [*bundle.index.get("earlier_legs", []), tr]
        if len(legs) > 1:
            iterations = sum(leg.get("iterations") or 0 for leg in legs)
            minutes = sum(leg.get("wall_time_s") or 0 for leg in legs) / 60
            out.print(f"training history: {len(legs)} legs, {iterations:,} iterations, {minutes:.0f} min in all")


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
    stage: str = typer.Option(
        "predictor",
        help="predictor; refiner (diffusion refiner against the frozen predictor of --predictor); "
        "vectors (Word2Vec+Doc2Vec, --out, --seed); analyzer (degradation analyzer: --root clean "
        "photos, optional --input/--target real blurred/sharp frames).",
    ),
    add_to: str | None = typer.Option(
        None, "--add-to", help="(vectors, analyzer, refiner) Also add the result to this bundle."
    ),
    predictor: str | None = typer.Option(
        None, help="(refiner) Bundle whose predictor the refiner learns to refine; default: the shipped one."
    ),
):
    """Train the predictor (accelerate: `accelerate launch -m m3restore train ...` for many GPUs)."""
    if stage in ("vectors", "analyzer"):
        if out_dir is None:
            fail("--out DIR is required", 2)
        log = lambda m: console.print(m, soft_wrap=True)  # noqa: E731
        if stage == "vectors":
            from m3restore.training.vectors import run as run_vectors

            bundle = run_vectors(out_dir, seed=seed or 0, add_to=add_to, log=log)
        else:
            from m3restore.training.analyzer import run as run_analyzer

            if not root:
                fail("--stage analyzer needs --root (a folder of clean photos to degrade)", 2)
            bundle = run_analyzer(
                out_dir,
                root=root,
                real_blur=input,
                real_sharp=target,
                iterations=iterations or 3000,
                batch_size=batch_size or 32,
                lr=lr or 2e-3,
                seed=seed or 0,
                time_limit_minutes=time_limit or 0.0,
                add_to=add_to,
                init=init,
                log=log,
            )
        out.print(f"bundle written to {bundle}")
        return
    if add_to and stage != "refiner":
        fail("--add-to is for --stage vectors, analyzer or refiner", 2)
    if predictor and stage != "refiner":
        fail("--predictor is for --stage refiner", 2)
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
                predictor_bundle=predictor,
            ),
        )
    if add_to:
        _check_same_predictor(add_to, cfg.predictor_bundle if cfg is not None else None)
    log = lambda m: console.print(m, soft_wrap=True)  # noqa: E731
    if console.is_terminal:
        bundle = _train_with_progress_bar(run_training, cfg, run_dir, resume is not None, init, log)
    else:  # logs and CI get plain lines
        bundle = run_training(cfg, run_dir, resume=resume is not None, init=init, log=log)
    out.print(f"bundle written to {bundle}")
    if add_to:
        from m3restore.weights import extend_bundle, open_bundle

        extend_bundle(add_to, {"refiner": open_bundle(bundle).load("refiner")})
        out.print(f"added refiner to {add_to}")


@app.command()
@friendly
def promote(
    source: str = typer.Argument(..., help="A training run's bundle, e.g. runs/NAME/bundle."),
    into: str = typer.Argument(..., help="The bundle it updates: a folder or an installed name."),
    storage: str | None = typer.Option(None, help="float16 or float32; default: what the target stores."),
):
    """Ship a trained leg: a bundle's components replaced by a warm-started run's.

    The bundle's earlier legs stay on record in its model_index.json.
    """
    from m3restore.weights import promote_bundle, resolve

    target = resolve(into)
    index = promote_bundle(source, target, storage=storage)
    tr = index["training"]
    legs = len(index["earlier_legs"]) + 1
    out.print(
        f"promoted {source} into {target} (shipped leg {legs} on its record): {tr.get('iterations')} iterations"
        f"{_validation(tr)}",
        soft_wrap=True,
    )
    if (target / "MODEL_CARD.md").exists():
        out.print(f"{target / 'MODEL_CARD.md'} is unchanged: re-measure and update it", soft_wrap=True)


@app.command()
@friendly
def average(
    sources: list[str] = typer.Argument(..., help="Two or more runs' bundles of one model from one start."),
    out_dir: Path = typer.Option(..., "--out", help="The new bundle folder."),
    storage: str = typer.Option("float32", help="float32 or float16."),
):
    """Average the weights of several runs of one leg (e.g. different seeds) into a new bundle.

    Measure it beside the runs themselves; ship it with `m3restore promote` like any run's bundle.
    """
    from m3restore.weights import average_bundles

    path = average_bundles(sources, out_dir, storage=storage)
    out.print(f"wrote the mean of {len(sources)} bundles to {path}", soft_wrap=True)


def _validation(training: dict) -> str:
    """The text ", validation PSNR X dB" for a training record; empty where it has none (an averaged bundle)."""
    return f", validation PSNR {training['val_psnr']} dB" if training.get("val_psnr") is not None else ""


def _check_same_predictor(add_to: str, predictor: str | None) -> None:
    """A refiner refines one predictor's output: refuse to add it to a bundle with another one."""
    from m3restore.weights import open_bundle

    def digest(name):
        return open_bundle(name).index["components"].get("predictor", {}).get("files", {}).get("model.safetensors")

    if digest(add_to) != digest(predictor):
        fail(f"--add-to {add_to}: its predictor differs from the one the refiner trains against (--predictor)", 2)


def _train_with_progress_bar(run_training, cfg, run_dir, resume, init, log):
    """A rich progress bar (loss, lr, val PSNR, it/s, ETA) for interactive training."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from m3restore.training.loop import progress_fields

    columns = (BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[speed]}"), TimeRemainingColumn())
    with Progress(TextColumn("{task.description}"), *columns, console=console) as bar:
        task = bar.add_task("training", total=None, speed="")

        def update(row, config):
            speed = f"{row['it_s']:.2f} it/s" if row["it_s"] else ""
            bar.update(
                task,
                total=config.iterations,
                completed=row["step"],
                description=progress_fields(row, config),
                speed=speed,
            )
            if row["val_psnr"] is not None:
                log(f"step {row['step']}: validation PSNR {row['val_psnr']:.2f} dB")

        return run_training(cfg, run_dir, resume=resume, init=init, log=log, on_progress=update)


# -- eval / caption ---------------------------------------------------------------------------
@app.command(name="eval")
@friendly
def eval_(
    dataset: str | None = typer.Option(
        None, help="gopro, realblur-j, realblur-r, hide, pairs, synthetic or text (default: pairs with --input)."
    ),
    root: str | None = typer.Option(None, help="Dataset root (gopro, realblur-*, hide) or clean images (synthetic)."),
    split: str = typer.Option("test", help="Dataset split: test or train."),
    input: str | None = typer.Option(None, "--input", help="Degraded images (with --dataset pairs)."),
    target: str | None = typer.Option(None, "--target", help="Ground-truth images, matched by file stem."),
    degrade: str | None = typer.Option(None, help='Degradation spec for synthetic/text data, e.g. "noise:25".'),
    seed: int = typer.Option(0, help="Seed for synthetic degradations and rendered text."),
    count: int | None = typer.Option(None, help="Number of rendered text images (--dataset text; default 24)."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N images."),
    crop_to_match: bool = typer.Option(False, help="Crop a pair of unequal size to its common top-left region."),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Run folder: results.csv, summary.json, report.html (default: runs/eval/<dataset>-<time>)."
    ),
    weights: list[str] | None = typer.Option(None, help="Weights bundle; repeat to compare bundles (one row each)."),
    no_model: bool = typer.Option(False, "--no-model", help="Score only the baselines."),
    baseline: list[str] | None = typer.Option(
        None, help="input, bicubic, opencv-nlm, richardson-lucy, wiener, bm3d, ffdnet; repeatable (default: input)."
    ),
    ablate: list[str] | None = typer.Option(None, help="text: correct / empty / wrong prompt, one row each."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Prompt for every image instead of the dataset's."),
    lpips_weights: Path | None = typer.Option(None, help="LPIPS weights (safetensors or state dict)."),
    fid_weights: Path | None = typer.Option(None, help="FID feature network (torch.export .pt2 or TorchScript)."),
    resume: bool = typer.Option(False, help="Continue the run in --out, skipping images already in results.csv."),
    overwrite: bool = typer.Option(False, help="Replace an earlier evaluation in --out."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", help="auto (fp16 on CUDA, fp32 on CPU), fp32, fp16, bf16."),
    tile: str = typer.Option("auto", help="Tile side in pixels, 0 for none, or auto."),
    ensemble: int = typer.Option(1, help="Self-ensemble of 1, 2, 4 or 8 flipped/transposed views per image."),
    plan: str = typer.Option(
        "auto", help="As restore --plan: auto scores what restore gives (specialists included), none one pass."
    ),
):
    """Evaluate on a dataset: PSNR/SSIM (+LPIPS, FID, OCR), baselines, ablations, HTML report."""
    from rich.table import Table

    from m3restore.errors import ConfigError
    from m3restore.evaluation import EvaluationInterrupted, baseline_methods, evaluate, model_methods, open_dataset
    from m3restore.evaluation.report import METRICS
    from m3restore.pipeline.ensemble import check_ensemble

    ablations = [a.strip().lower() for a in ablate or []]
    unknown = [a for a in ablations if a != "text"]
    if unknown:
        raise ConfigError(unknown_choice("--ablate value", unknown[0], ["text"]))
    if no_model and (weights or ablations or ensemble != 1):
        raise ConfigError("--no-model cannot be combined with --weights, --ablate or --ensemble")
    check_ensemble(ensemble)
    from m3restore.pipeline.planner import parse_plan

    try:
        parse_plan(plan)  # a bad --plan fails before the dataset is read
    except M3RestoreError as error:
        fail(str(error), 2)
    data = open_dataset(
        dataset,
        root=root,
        split=split,
        input=input,
        target=target,
        degrade_spec=degrade,
        seed=seed,
        limit=limit,
        count=count,
        prompt=prompt,
        crop_to_match=crop_to_match,
    )
    if "text" in ablations and data.kind == "pairs" and not prompt:
        raise ConfigError("--ablate text on --dataset pairs needs --prompt (the correct description of the damage)")
    if out_dir is None:  # a fresh, dated run folder, so no earlier evaluation is ever replaced
        import time

        out_dir = Path("runs") / "eval" / f"{dataset or 'pairs'}-{time.strftime('%Y%m%d-%H%M%S')}"
        console.print(f"writing to {out_dir} (choose with --out)")
    methods, notes = baseline_methods(baseline or ["input"])  # the degraded input: what a gain is measured from
    for line in notes:
        console.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    if not no_model:
        methods += model_methods(
            weights or [None],
            ablate_text="text" in ablations,
            device=device,
            dtype=dtype,
            tile=tile,
            seed=seed,
            ensemble=ensemble,
            plan=plan,
        )
    try:
        result = evaluate(
            data,
            methods,
            out_dir,
            lpips_weights=lpips_weights,
            fid_weights=fid_weights,
            resume=resume,
            overwrite=overwrite,
            console=console,
            notes=notes,
        )
    except EvaluationInterrupted as stop:
        fail(str(stop), 130)
    summary = result.summary
    ocr = any(m["means"].get("ocr_cer") is not None for m in summary["methods"].values())
    cols = ["psnr", "ssim", "lpips", "fid"] + (["ocr_cer"] if ocr else [])
    table = Table(title=f"{data.kind}: {summary['images']['scored']} images")
    table.add_column("Method")
    for c in cols:
        table.add_column(METRICS[c][0], justify="right")
    for m in summary["methods"].values():
        cells = []
        for c in cols:
            v = m["fid"] if c == "fid" else m["means"].get(c)
            cells.append("n/a" if v is None else f"{v:.{METRICS[c][2]}f}")
        table.add_row(m["label"], *cells)
    out.print(table)
    for line in summary["notes"]:
        if "unavailable" in line or "not computed" in line:
            out.print(line, soft_wrap=True)
    out.print(f"report: {result.out / 'report.html'}")


@app.command()
@friendly
def caption(
    inputs: list[Path] = typer.Argument(..., help="Images and/or folders to describe."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document with every finding."),
    captioner: str | None = typer.Option(None, help="Image captioner (Hugging Face id or folder) for content."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Your words, to show the merged prompt."),
    weights: str | None = typer.Option(None, help="Weights bundle (its degradation analyzer is used)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    device: str = typer.Option("auto", help="Device for the captioner: auto, cpu, cuda or cuda:N."),
):
    """Say what is wrong with images (and what they show, with --captioner) and the one-pass prompt (--plan none)."""
    import json

    from m3restore.caption.prompt import describe_files

    results, failed, warned = [], 0, set()
    for path, result, error in describe_files(
        inputs, weights=weights, captioner=captioner, prompt=prompt, recursive=recursive, device=device
    ):
        if error:
            failed += 1
            console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
            continue
        for message in set(result["warnings"]) - warned:
            warned.add(message)
            console.print(f"[yellow]warning:[/] {message}", soft_wrap=True)
        results.append(result)
        if not as_json:
            found = result["summary"] or "no degradation detected"
            content = f'content: "{result["content"]}"' if result["captioner"] else "no content captioner configured"
            out.print(f'{path}: {found} · {content} · one-pass prompt: "{result["prompt"]}"', soft_wrap=True)
    if as_json:
        out.print_json(json.dumps(results))
    if failed:
        raise typer.Exit(1)


# -- plan -------------------------------------------------------------------------------------
@app.command(name="plan")
@friendly
def plan_command(
    inputs: list[Path] = typer.Argument(..., help="Images and/or folders to plan for."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document with every plan."),
    plan: str = typer.Option("auto", help="auto, or fixed steps such as denoise,deblur."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Your words (degradations they name join)."),
    weights: str | None = typer.Option(None, help="Weights bundle (its analyzer and predictor)."),
    recursive: bool = typer.Option(False, "--recursive", "-r", help="Descend into sub-folders."),
    mask: Path | None = typer.Option(None, help="Image whose white pixels mark missing regions (for inpaint)."),
):
    """Dry run: what restore --plan would do to each image (steps, order, models, why), restoring nothing."""
    import json

    from m3restore.io import list_images, list_unread, read_image, unread_message
    from m3restore.pipeline.batch import plan_table
    from m3restore.pipeline.planner import FLAT_NOTE, Planner, Pool, parse_plan, read_mask
    from m3restore.pipeline.restore import load_pipeline

    try:
        steps = parse_plan(plan)
    except M3RestoreError as error:
        fail(str(error), 2)
    if steps == "none":
        fail("--plan none has nothing to show: it is one all-in-one pass", 2)
    pipe = load_pipeline(weights, device="cpu", dtype="fp32")
    planner = Planner(pipe, Pool.discover(pipe, mask=read_mask(mask)))
    results, failed = [], 0
    images = list_images(inputs, recursive=recursive)
    for path in list_unread(inputs, recursive=recursive):
        failed += 1
        console.print(f"[bold red]error:[/] {escape(unread_message(path))}", soft_wrap=True)
    for path in images:
        try:
            image = read_image(path)
            report = planner.plan(image.rgb(), steps, prompt, grey=image.is_grey)
        except M3RestoreError as error:
            failed += 1
            console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
            continue
        results.append({"file": str(path), **report.to_dict()})
        if as_json:
            continue
        if report.flat:
            out.print(f"{path}: {FLAT_NOTE}; restore would write it unchanged", soft_wrap=True)
        elif report.passthrough:
            found = ", ".join(f["phrase"] for f in report.findings) or "no degradation"
            out.print(
                f"{path}: analyzer found {found}; nothing to fix, restore would write it unchanged",
                soft_wrap=True,
            )
        else:
            out.print(plan_table(path, report))
    if as_json:
        out.print_json(json.dumps(results))
    if failed:
        raise typer.Exit(1)


def main() -> None:
    """The console script. Typer's own errors (an unknown option, a value of the wrong type, a
    missing argument) come out as one line too, instead of a usage panel."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:  # click's exceptions, as Typer vendors them
        ctx = getattr(error, "ctx", None)
        if type(error).__name__ == "NoArgsIsHelpError":  # bare `m3restore`: the help, as before
            out.print(ctx.get_help(), markup=False)
            sys.exit(error.exit_code)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        console.print(f"[bold red]error:[/] {escape(error.format_message())}{where}", soft_wrap=True)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        console.print("[bold red]error:[/] interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

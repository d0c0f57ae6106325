"""The training loop, on Hugging Face accelerate so one command scales from a CPU to many GPUs.

Checkpoints hold model, EMA, optimiser, RNG, elapsed time and step, are written atomically every
``checkpoint_minutes`` and on Ctrl-C/SIGTERM, and ``resume`` continues exactly where a run
stopped: the data order is a pure function of (seed, epoch, index), so skipping the batches
already seen in the current epoch reproduces the same stream.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from m3restore.config import from_dict, to_dict
from m3restore.errors import ConfigError, DataError, M3RestoreError, unknown_choice
from m3restore.training.config import SourceConfig, TrainConfig
from m3restore.training.prompts import TrainingPrompts
from m3restore.training.stages import evaluate_psnr, make_stage

CHECKPOINT = "checkpoint.pt"
ANALYZER_WORDS = "analyzer_prompts.json"  # the analyzer's words for each pair, kept for --resume


class TrainingError(M3RestoreError):
    """A training run cannot start or continue (bad resume folder, out of memory, …)."""


# -- data ------------------------------------------------------------------------------------
def _pairs_for(source: SourceConfig):
    from m3restore.data import datasets as ds

    if source.kind == "gopro":
        return ds.gopro_pairs(_need(source.root, "root", source), source.split)
    if source.kind in ("realblur-j", "realblur-r"):
        return ds.realblur_pairs(_need(source.root, "root", source), source.kind[-1].upper(), source.split)
    if source.kind == "hide":
        return ds.hide_pairs(_need(source.root, "root", source), source.split)
    if source.kind == "pairs":
        return ds.folder_pairs(_need(source.input, "input", source), _need(source.target, "target", source))
    raise ConfigError(f"{source.kind} is not a paired dataset")


def _need(value, name: str, source: SourceConfig):
    if not value:
        raise ConfigError(f"dataset {source.kind} needs --{name}")
    return value


def analyzer_prompts(source: SourceConfig, pairs, analyzer=None) -> dict[str, str]:
    """Each pair's prompt as `m3restore restore` words its frame: the damage ``source.prompt``
    names, at the severity ``analyzer`` (default: the installed bundle's) reads in the whole input.

    The command prompts a step with the analyzer's words ("mild motion blur"); a paired source's
    fixed prompt carries no severity, so without these the command's wording of real damage is
    one the network never saw with it.
    """
    from m3restore.caption.degradation import analyze
    from m3restore.data.datasets import DEFAULT_PAIR_PROMPT, _load_rgb
    from m3restore.pipeline.planner import user_request
    from m3restore.training.prompts import command_prompt

    if analyzer is None:
        from m3restore.pipeline.restore import load_pipeline

        analyzer = load_pipeline(device="cpu", dtype="fp32", tile=0).analyzer
        if analyzer is None:
            raise ConfigError("analyzer_prompts needs an installed bundle with a degradation analyzer")
    words = source.prompt or DEFAULT_PAIR_PROMPT
    if not user_request(words)[0]:
        raise ConfigError(f"analyzer_prompts: the prompt {words!r} names no damage the analyzer reads")
    return {pair.name: command_prompt(words, analyze(analyzer, _load_rgb(pair.input))) for pair in pairs}


def build_train_dataset(cfg: TrainConfig, words: dict[str, dict[str, str]] | None = None):
    """The weighted mixture of all training sources.

    Every part is as long as the epoch, so each sample of an epoch is a distinct random crop and
    degradation (a part only as long as its image list would repeat the same few crops).
    ``words`` holds the analyzer's prompts of each source with ``analyzer_prompts`` (keyed by the
    source's index); a source found there reuses them, one not found there is read and added.
    """
    from m3restore.data import datasets as ds

    if not cfg.sources:
        raise ConfigError("no training data: give --dataset with --root (or --input/--target), or sources in a config")
    parts, weights = [], []
    for i, source in enumerate(cfg.sources):
        seed = cfg.seed * 1000 + i
        synthetic = dict(
            augment=cfg.augment, seed=seed, prompt_dropout=cfg.prompt_dropout, length=cfg.samples_per_epoch
        )
        if source.kind == "clean":
            images = ds.clean_images(_need(source.root, "root", source))
            part = ds.SyntheticDataset(
                images,
                source.degrade,
                cfg.crop,
                scale=source.scale,
                shuffle_channels=source.shuffle_channels,
                **synthetic,
            )
        elif source.kind == "text":
            part = ds.RenderedTextDataset(source.degrade, cfg.crop, **synthetic)
        else:
            pairs = _pairs_for(source)
            kwargs: dict[str, Any] = {"prompt": source.prompt} if source.prompt else {}
            if source.analyzer_prompts:
                if words is None:
                    words = {}
                if str(i) not in words:
                    words[str(i)] = analyzer_prompts(source, pairs)
                kwargs.update(alt_prompts=words[str(i)], alt_rate=source.analyzer_prompts)
            part = ds.PairedCropDataset(
                pairs, cfg.crop, augment=cfg.augment, seed=seed, length=cfg.samples_per_epoch, **kwargs
            )
        parts.append(part)
        weights.append(source.weight)
    return ds.MixedDataset(parts, weights, length=cfg.samples_per_epoch, seed=cfg.seed)


def _dataset_with_recorded_words(cfg: TrainConfig, out: Path, resume: bool, log):
    """The training set, with the analyzer's prompts written to the run folder, and read back from
    it on ``--resume``: a resume after the installed analyzer changed still words each pair as the
    run began."""
    path = out / ANALYZER_WORDS
    words: dict[str, dict[str, str]] = {}
    if resume and path.exists():
        try:
            words = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise TrainingError(f"{path}: unreadable ({error}); delete it to read the pairs again") from None
        log(f"analyzer prompts of the paired sources from {path}")
    dataset = build_train_dataset(cfg, words)
    if words:
        from m3restore.files import atomic_write_text

        atomic_write_text(path, json.dumps(words, indent=2, sort_keys=True) + "\n", error=TrainingError)
    return dataset


def build_val_items(cfg: TrainConfig) -> list[dict[str, Any]]:
    """Fixed validation items (centre crops), decoded once."""
    from m3restore.data import datasets as ds

    items = []
    for i, source in enumerate(cfg.val_sources):
        if source.kind == "text":
            raise ConfigError("rendered text (kind text) is for training; validate on photos or pairs")
        if source.kind == "clean":
            data = ds.EvalDataset(ds.clean_images(_need(source.root, "root", source)), source.degrade, seed=1000 + i)
        else:
            data = ds.EvalDataset(_pairs_for(source), prompt=source.prompt or None)
        per_source = max(1, cfg.val_images // len(cfg.val_sources))
        for j in range(min(len(data), per_source)):
            item = data[j]
            item["input"], item["target"] = (_center_crop(item[k], cfg.val_crop) for k in ("input", "target"))
            items.append(item)
    return items


def _center_crop(t: torch.Tensor, size: int) -> torch.Tensor:
    _, h, w = t.shape
    ch, cw = min(size, h), min(size, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return t[:, top : top + ch, left : left + cw]


def _collate(items):
    return {
        "input": torch.stack([it["input"] for it in items]),
        "target": torch.stack([it["target"] for it in items]),
        "prompt": [it["prompt"] for it in items],
    }


# -- text -------------------------------------------------------------------------------------
def load_text_encoder(cfg: TrainConfig, device):
    from m3restore.text.encoder import CachedTextEncoder, TextEncoder

    if cfg.text_cache:
        return CachedTextEncoder.load(cfg.text_cache)
    return TextEncoder.load(cfg.text_encoder, device="cpu")


# -- schedule ---------------------------------------------------------------------------------
def lr_factor(cfg: TrainConfig, step: int, elapsed_s: float = 0.0) -> float:
    """Learning-rate multiplier: linear warm-up, then halving steps or a cosine.

    With a time limit the cosine runs over whichever ends first, the iterations or the time,
    so a run cut short by its time budget still ends at a low learning rate.
    """
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    if cfg.lr_schedule == "step":
        return warm * 0.5 ** (step // cfg.lr_halve_every)
    progress = step / max(1, cfg.iterations)
    if cfg.time_limit_minutes:
        progress = max(progress, elapsed_s / (cfg.time_limit_minutes * 60))
    progress = min(1.0, progress)
    floor = cfg.lr_min / cfg.lr
    return warm * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def _stop_if_diverged(loss: torch.Tensor, grad_norm, step: int, cfg: TrainConfig, out: Path) -> None:
    """Stop a run whose loss or gradients are no longer numbers, before they reach the weights.

    The gradient norm is not judged under fp16, where the loss scaler skips overflowing steps
    by design; the loss always is.
    """
    if not torch.isfinite(loss.detach()).all():
        what = "loss"
    elif grad_norm is not None and cfg.mixed_precision != "fp16" and not torch.isfinite(grad_norm).all():
        what = "gradient norm"
    else:
        return
    kept = f"{out / CHECKPOINT} holds the last checkpoint" if (out / CHECKPOINT).exists() else "no checkpoint yet"
    if cfg.mixed_precision == "bf16":
        hint = "bf16 autocast breaks this network's gradients (docs/TRAIN_PRECISION.md): set mixed_precision: no"
    else:
        hint = "lower --lr"
    raise TrainingError(f"the {what} is not finite at step {step + 1}, so the run stopped ({kept}); {hint}")


# -- checkpoints ------------------------------------------------------------------------------
def _atomic_torch_save(obj, path: Path) -> None:
    from m3restore.files import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue(), error=TrainingError)


def load_checkpoint(out: Path) -> dict[str, Any]:
    path = out / CHECKPOINT
    if not path.is_file():
        raise TrainingError(f"{out}: no checkpoint to resume from (expected {CHECKPOINT})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file
        raise TrainingError(f"{path}: unreadable checkpoint ({str(error).splitlines()[0]})") from None


# -- the run ----------------------------------------------------------------------------------
class _Stop:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self):
        self.requested = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.requested is not None:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    init: str | None = None,
    log=print,
    on_progress=None,
) -> Path:
    """Train the network of ``cfg.stage`` into ``out``; returns the exported bundle path.

    ``log`` receives progress lines and messages; ``on_progress(row, cfg)``, when given, receives
    each metrics row instead of its progress line (the CLI draws a rich progress bar with it).
    """
    from accelerate import Accelerator

    from m3restore.data.datasets import EpochKeyed, EpochSampler

    out = Path(out)
    state = None
    if resume:
        state = load_checkpoint(out)
        cfg = from_dict(TrainConfig, state["config"], where="checkpoint config")
    elif cfg.grow and not init:
        raise ConfigError("grow adds blocks to the network of a bundle: give it with --init")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / ".write-test").touch()
        (out / ".write-test").unlink()
    except OSError as error:
        raise TrainingError(f"{out}: cannot write there ({error.strerror})") from None

    torch.manual_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=not torch.cuda.is_available())
    device = accelerator.device
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # All cores by default; OMP_NUM_THREADS caps it, e.g. to share the machine with another
        # run (two runs that both take every core thrash: each gets far less than half).
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    stage = make_stage(cfg, device)
    cfg, model = stage.build(cfg, None if resume else init, log)
    stage.cfg = cfg
    model = model.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema_decay else None

    encoder = load_text_encoder(cfg, device)
    text_dim = (cfg.refiner.network if cfg.stage == "refiner" else cfg.model).text_dim
    if encoder.dim != text_dim:
        raise ConfigError(f"text encoder {encoder.name} gives {encoder.dim}-d vectors; the network expects {text_dim}")

    prompts = TrainingPrompts(encoder)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    dataset = _dataset_with_recorded_words(cfg, out, resume, log)
    val_items = build_val_items(cfg)
    fixes = fixes_from_config(cfg)  # now, not at export: a run must not fail after its last step
    sampler = EpochSampler(len(dataset), cfg.seed)
    loader = DataLoader(
        EpochKeyed(dataset),
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        drop_last=True,
        persistent_workers=cfg.num_workers > 0,
        pin_memory=device.type == "cuda",
    )
    batches_per_epoch = len(dataset) // cfg.batch_size
    if batches_per_epoch == 0:
        raise DataError(f"samples_per_epoch {len(dataset)} is smaller than batch_size {cfg.batch_size}")

    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step = int(state["step"])
        log(f"resumed {out} at step {step}")
    model, optimizer = accelerator.prepare(model, optimizer)
    if ema is not None:
        ema.to(device)

    (out / "train_config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    logger = _MetricsLog(out, resume_step=step if resume else None)
    started = time.time()
    last_ckpt = time.time()
    elapsed_before = float(state["elapsed"]) if state is not None else 0.0

    def checkpoint():
        nonlocal last_ckpt
        unwrapped = accelerator.unwrap_model(model)
        payload = {
            "config": to_dict(cfg),
            "model": unwrapped.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "elapsed": elapsed_before + time.time() - started,
        }
        if ema is not None:
            payload["ema"] = ema.state_dict()
        if accelerator.is_main_process:
            _atomic_torch_save(payload, out / CHECKPOINT)
        last_ckpt = time.time()

    def validate() -> float | None:
        if not val_items:
            return None
        net = ema if ema is not None else accelerator.unwrap_model(model)
        return evaluate_psnr(stage, net, encoder, val_items, device)

    model.train()
    window = {"loss": 0.0, "n": 0, "data": 0.0, "compute": 0.0}
    reason = "finished"
    with _Stop() as stop:
        while step < cfg.iterations:
            epoch, offset = divmod(step, batches_per_epoch)
            sampler.set_epoch(epoch, offset * cfg.batch_size)
            t_data = time.time()
            for batch in loader:
                t0 = time.time()
                window["data"] += t0 - t_data
                lr = cfg.lr * lr_factor(cfg, step, elapsed_before + t0 - started)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                inp = batch["input"].to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                tgt = batch["target"].to(device, non_blocking=True)
                text = prompts.encode(batch["prompt"]).to(device)
                try:
                    with accelerator.autocast():
                        loss = stage.loss(model, inp, tgt, text)
                    optimizer.zero_grad(set_to_none=True)
                    accelerator.backward(loss)
                    grad_norm = None
                    if cfg.grad_clip:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    _stop_if_diverged(loss, grad_norm, step, cfg, out)
                    optimizer.step()
                except torch.OutOfMemoryError:
                    raise TrainingError(
                        f"out of memory at batch_size {cfg.batch_size}, crop {cfg.crop}: lower --batch-size or --crop"
                    ) from None
                if ema is not None:
                    decay = min(cfg.ema_decay, (1 + step) / (10 + step))
                    with torch.no_grad():
                        for e, p in zip(ema.parameters(), accelerator.unwrap_model(model).parameters()):
                            e.lerp_(p.detach(), 1 - decay)
                step += 1
                window["loss"] += loss.item()
                window["n"] += 1
                t_data = time.time()
                window["compute"] += t_data - t0

                val = validate() if step % cfg.val_every == 0 or step == cfg.iterations else None
                if step % cfg.log_every == 0 or val is not None:
                    row = _row(step, window, lr, cfg, elapsed_before + time.time() - started, val)
                    logger.write(row)
                    if on_progress is not None:
                        on_progress(row, cfg)
                    else:
                        log(_progress_line(row, cfg))
                    window = {"loss": 0.0, "n": 0, "data": 0.0, "compute": 0.0}
                over_time = (
                    cfg.time_limit_minutes and (elapsed_before + time.time() - started) > cfg.time_limit_minutes * 60
                )
                if stop.requested or over_time:
                    reason = f"stopped by {stop.requested}" if stop.requested else "time limit reached"
                    break
                if time.time() - last_ckpt > cfg.checkpoint_minutes * 60:
                    checkpoint()
                if step >= cfg.iterations:
                    break
            if reason != "finished":
                break
        checkpoint()
    logger.close()
    _plot(out, cfg.loss)
    final = ema if ema is not None else accelerator.unwrap_model(model)
    elapsed = elapsed_before + time.time() - started
    bundle = export_bundle(
        stage.components(final), encoder, cfg, out / "bundle", step, elapsed, logger.last_val, fixes=fixes
    )
    if prompts.missing:
        log(f"{prompts.missing} of {prompts.seen} prompts were not in the text table and trained as empty prompts")
    log(f"{reason} at step {step}; checkpoint {out / CHECKPOINT}; bundle {bundle}")
    return bundle


def export_bundle(
    components, encoder, cfg: TrainConfig, path: Path, step: int, seconds: float, val_psnr, *, fixes: list[str]
) -> Path:
    """Write the trained ``components`` (name → module) as a bundle with the run's facts."""
    from m3restore.weights import save_bundle

    cpu = {
        name: copy.deepcopy(net).float().to("cpu").to(memory_format=torch.contiguous_format)
        for name, net in components.items()
    }
    return save_bundle(
        path,
        cpu,
        name=cfg.bundle_name,
        fixes=fixes,
        text_encoder=encoder.describe(),
        training={
            "recipe": cfg.recipe,
            "iterations": step,
            "wall_time_s": round(seconds, 1),
            "val_psnr": val_psnr,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}",
            "config": to_dict(cfg),
        },
    )


def fixes_from_config(cfg: TrainConfig) -> list[str]:
    """The planner steps a predictor trained on ``cfg``'s sources can do (declared in its bundle):
    ``cfg.fixes`` when given, else derived from the sources."""
    from m3restore.caption.degradation import FOLD
    from m3restore.data.degrade import parse_spec
    from m3restore.pipeline.planner import LABEL_STEP, STEPS, user_request

    if cfg.fixes:
        unknown = sorted(set(cfg.fixes) - set(STEPS))
        if unknown:
            raise ConfigError("fixes: " + unknown_choice("step", unknown[0], STEPS))
        return [s for s in STEPS if s in cfg.fixes]
    steps = set()
    for source in cfg.sources:
        if source.kind in ("clean", "text"):
            names = [FOLD.get(item.name, item.name) for item in parse_spec(source.degrade).steps]
            steps.update(LABEL_STEP[n] for n in names if n in LABEL_STEP)
        elif source.kind == "pairs":
            steps.update(user_request(source.prompt)[0])
        else:  # GoPro, RealBlur, HIDE: real blur
            steps.add("deblur")
    return [s for s in STEPS if s in steps]


# -- logging ----------------------------------------------------------------------------------
def _row(step, window, lr, cfg, elapsed, val) -> dict[str, Any]:
    n = max(1, window["n"])
    total = window["data"] + window["compute"]
    return {
        "step": step,
        "loss": round(window["loss"] / n, 6),
        "lr": lr,
        "it_s": round(n / total, 3) if total else None,
        "data_fraction": round(window["data"] / total, 3) if total else None,
        "elapsed_s": round(elapsed, 1),
        "val_psnr": round(val, 3) if val is not None else None,
    }


def progress_fields(row: dict[str, Any], cfg: TrainConfig) -> str:
    """'loss … · lr … · val PSNR …' for a progress display that shows speed and ETA itself."""
    val = f" · val PSNR {row['val_psnr']:.2f} dB" if row["val_psnr"] is not None else ""
    return f"loss {row['loss']:.4f} · lr {row['lr']:.2e}{val}"


def _progress_line(row: dict[str, Any], cfg: TrainConfig) -> str:
    eta = ""
    if row["it_s"]:
        secs = (cfg.iterations - row["step"]) / row["it_s"]
        if cfg.time_limit_minutes:
            secs = min(secs, max(0.0, cfg.time_limit_minutes * 60 - row["elapsed_s"]))
        eta = f" · ETA {int(secs // 3600)}h{int(secs % 3600 // 60):02d}m"
    val = f" · val PSNR {row['val_psnr']:.2f} dB" if row["val_psnr"] is not None else ""
    speed = f" · {row['it_s']:.2f} it/s" if row["it_s"] else ""
    return f"step {row['step']}/{cfg.iterations} · loss {row['loss']:.4f} · lr {row['lr']:.2e}{speed}{val}{eta}"


class _MetricsLog:
    FIELDS = ("step", "loss", "lr", "it_s", "data_fraction", "elapsed_s", "val_psnr")

    def __init__(self, out: Path, resume_step: int | None):
        """A fresh log, or (``resume_step`` given) the existing one cut back to the checkpoint's
        step: rows a run logged after its last checkpoint are logged again when it resumes."""
        append = resume_step is not None
        if append:
            self._cut(out, resume_step)
        mode = "a" if append else "w"
        self.jsonl = open(out / "metrics.jsonl", mode)
        new_csv = not append or not (out / "metrics.csv").exists()
        self.csv_file = open(out / "metrics.csv", mode, newline="")
        self.csv = csv.DictWriter(self.csv_file, self.FIELDS)
        if new_csv:
            self.csv.writeheader()
        self.last_val = None

    @staticmethod
    def _cut(out: Path, step: int) -> None:
        """Both files rewritten from the JSONL rows up to ``step`` (the CSV holds the same rows)."""
        from m3restore.files import atomic_write_text

        jsonl = out / "metrics.jsonl"
        if not jsonl.exists():
            return
        rows = [json.loads(line) for line in jsonl.read_text().splitlines() if line.strip()]
        rows = [row for row in rows if row["step"] <= step]
        table = io.StringIO(newline="")
        writer = csv.DictWriter(table, _MetricsLog.FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(jsonl, "".join(json.dumps(row) + "\n" for row in rows), error=TrainingError)
        atomic_write_text(out / "metrics.csv", table.getvalue(), error=TrainingError)

    def write(self, row):
        self.jsonl.write(json.dumps(row) + "\n")
        self.csv.writerow(row)
        self.jsonl.flush()
        self.csv_file.flush()
        if row["val_psnr"] is not None:
            self.last_val = row["val_psnr"]

    def close(self):
        self.jsonl.close()
        self.csv_file.close()


def _plot(out: Path, loss: str = "l1") -> None:
    """Loss and validation PSNR curves as curves.png (skipped without matplotlib); ``loss`` is
    the config's kind: an L1 loss is drawn on a log scale, a PSNR loss (negative dB) linearly."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    if loss == "psnr":
        a.set(xlabel="iteration", ylabel="multi-scale PSNR loss (-dB)", title="training loss")
    else:
        a.set(xlabel="iteration", ylabel="multi-scale L1", title="training loss", yscale="log")
    vals = [(r["step"], r["val_psnr"]) for r in rows if r["val_psnr"] is not None]
    if vals:
        b.plot(*zip(*vals), marker="o")
    b.set(xlabel="iteration", ylabel="PSNR (dB)", title="validation PSNR")
    fig.tight_layout()
    from m3restore.files import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(out / "curves.png", buffer.getvalue(), error=TrainingError)


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

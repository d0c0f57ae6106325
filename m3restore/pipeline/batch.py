"""Restore many files: the engine behind `m3restore restore`.

Inputs are files and folders; each result is written atomically. A bad file is reported and
skipped, never the end of the run; the summary lists every failure and the caller exits
non-zero if there was one.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from m3restore.errors import ImageError, M3RestoreError


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Report:
    succeeded: list[tuple[Job, float]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def eta_progress(console: Console, label: str = "", disable: bool = False) -> Progress:
    """The progress bar of every long command: description, bar, n/total, elapsed, ETA."""
    return Progress(
        TextColumn(f"{label}{{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


def plan_jobs(
    inputs, output, *, recursive: bool, suffix: str, overwrite: bool
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Expand inputs into (source, target) jobs; folder structure is kept under an output folder."""
    from m3restore.io import list_images, output_path

    expanded: list[tuple[Path, Path | None]] = []  # (file, folder it was found in)
    for item in inputs:
        item = Path(item)
        root = item if item.is_dir() else None
        expanded.extend((path, root) for path in list_images([item], recursive=recursive))
    many = len(expanded) > 1 or any(root is not None for _, root in expanded)
    if output is not None and many:
        _ensure_writable_folder(Path(output))
    elif output is not None:
        _ensure_writable_folder(Path(output).parent if not str(output).endswith(("/", os.sep)) else Path(output))

    jobs, problems, claimed = [], [], {}
    for path, root in expanded:
        base = output
        if output is not None and root is not None and path.parent != root:
            base = Path(output) / path.parent.relative_to(root)
        try:
            target = output_path(path, base, suffix=suffix, many=many)
        except ImageError as error:
            problems.append((path, str(error)))
            continue
        key = target.resolve()
        if key in claimed:
            problems.append((path, f"{target}: also the output of {claimed[key]}; use --suffix or separate folders"))
            continue
        if target.exists() and not overwrite:
            problems.append((path, f"{target}: exists; use --overwrite to replace it"))
            continue
        claimed[key] = path
        jobs.append(Job(path, target))
    return jobs, problems


def _ensure_writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".m3restore-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ImageError(f"{folder}: output folder cannot be written ({error.strerror or error})") from None


def restore_paths(
    inputs,
    output,
    *,
    prompt=None,
    seed=None,
    device="auto",
    dtype="auto",
    tile="auto",
    weights=None,
    recursive=False,
    suffix="_restored",
    overwrite=False,
    max_pixels=None,
    verbose=False,
    console: Console | None = None,
    text_encoder=None,
    auto_prompt=False,
    captioner=None,
) -> Report:
    """Restore every image named by ``inputs`` into ``output``; see the module docstring."""
    from m3restore.io import read_image, write_image
    from m3restore.pipeline.restore import _parse_tile, load_pipeline

    console = console or Console(stderr=True)
    _parse_tile(tile)  # a bad --tile fails before minutes of loading
    jobs, problems = plan_jobs(inputs, output, recursive=recursive, suffix=suffix, overwrite=overwrite)
    report = Report(failed=list(problems))
    if jobs:
        started = time.perf_counter()
        pipe = load_pipeline(
            weights,
            device=device,
            dtype=dtype,
            tile=tile,
            text_encoder=text_encoder,
            auto_prompt=auto_prompt,
            captioner=captioner,
        )
        if verbose:
            d = pipe.describe()
            console.print(
                f"bundle {d['bundle']} · {d['predictor_parameters']:,} parameters · {d['device']} {d['dtype']} "
                f"· loaded in {time.perf_counter() - started:.1f} s"
            )
        show_bar = len(jobs) > 1
        progress = eta_progress(console, disable=not show_bar)
        with progress:
            task = progress.add_task("restoring", total=len(jobs))
            for job in jobs:
                progress.update(task, description=f"restoring {job.source.name}")
                try:
                    image = read_image(job.source, max_pixels=max_pixels)
                    restored = pipe(image, prompt, seed)
                    write_image(job.target, restored, overwrite=overwrite)
                except M3RestoreError as error:
                    report.failed.append((job.source, str(error)))
                except MemoryError:
                    report.failed.append((job.source, f"{job.source}: out of memory; use a smaller --tile"))
                else:
                    report.succeeded.append((job, pipe.last.seconds))
                    if verbose:
                        info = pipe.last
                        analysis = getattr(info.merged, "analysis", None)
                        if analysis is not None:
                            found = analysis.summary() or "no degradation detected"
                            console.print(f"{job.source}: analyzer: {found}", soft_wrap=True)
                        if getattr(info.merged, "caption", ""):
                            console.print(f"{job.source}: content: {info.merged.caption!r}", soft_wrap=True)
                        console.print(
                            f"{job.source} → {job.target} · prompt used: {info.prompt or '(none)'!r} · "
                            f"tile {info.tile or 'none'} · {info.seconds:.2f} s",
                            soft_wrap=True,
                        )
                progress.advance(task)
    _summarise(report, console, show_table=len(jobs) + len(problems) > 1)
    return report


def _summarise(report: Report, console: Console, show_table: bool) -> None:
    if show_table and report.succeeded:
        table = Table(title="restored", show_lines=False)
        table.add_column("input")
        table.add_column("output")
        table.add_column("seconds", justify="right")
        for job, seconds in report.succeeded:
            table.add_row(str(job.source), str(job.target), f"{seconds:.2f}")
        console.print(table)
    elif report.succeeded:
        job, seconds = report.succeeded[0]
        console.print(f"restored {job.source} → {job.target} ({seconds:.2f} s)")
    for _path, message in report.failed:
        console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    if report.failed and (report.succeeded or len(report.failed) > 1):
        console.print(f"{len(report.succeeded)} restored, {len(report.failed)} failed")

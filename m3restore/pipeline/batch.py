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
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from m3restore.errors import ConfigError, ImageError, M3RestoreError


@dataclass
class Job:
    source: Path
    target: Path


@dataclass
class Report:
    succeeded: list[tuple[Job, float]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    partial: list[tuple[Path, str]] = field(default_factory=list)  # a planned step nothing could do
    plans: dict[Path, dict] = field(default_factory=dict)  # source -> PlanReport.to_dict()
    unchanged: set[Path] = field(default_factory=set)  # sources written back as they were


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


def spinner(console: Console) -> Progress:
    """For one long job (a 12 MP photo takes a minute on a CPU): a spinner and the time so far,
    on a terminal only, gone when the job is done."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def plan_jobs(
    inputs, output, *, recursive: bool, suffix: str, overwrite: bool, ext: str | None = None
) -> tuple[list[Job], list[tuple[Path, str]]]:
    """Expand inputs into (source, target) jobs; folder structure is kept under an output folder.
    ``ext`` is the format of outputs named from their input (default: the input's own)."""
    from m3restore.io import list_images, list_unread, output_path, unread_message

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

    problems = [(path, unread_message(path)) for path in list_unread(inputs, recursive=recursive)]
    jobs, claimed = [], {}
    for path, root in expanded:
        base = output
        if output is not None and root is not None and path.parent != root:
            base = Path(output) / path.parent.relative_to(root)
        try:
            target = output_path(path, base, suffix=suffix, many=many, ext=ext)
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
    ensemble=1,
    weights=None,
    recursive=False,
    suffix="_restored",
    ext=None,
    overwrite=False,
    max_pixels=None,
    verbose=False,
    console: Console | None = None,
    text_encoder=None,
    auto_prompt=False,
    captioner=None,
    sampling=None,
    uncertainty=None,
    plan=None,
    explain=False,
    mask=None,
) -> Report:
    """Restore every image named by ``inputs`` into ``output``; see the module docstring.

    ``sampling`` (:class:`m3restore.pipeline.restore.Sampling`) runs the diffusion refiner;
    ``ensemble`` averages the predictor over that many flipped/transposed views (1, 2, 4, 8);
    ``uncertainty`` is where the per-pixel std maps go: a file for one input, else a folder.
    ``plan`` is ``"auto"`` (the default, None: detect, order, verify; one all-in-one pass when the
    bundle has no analyzer), ``"none"`` (one all-in-one pass) or steps such as ``"denoise,deblur"``
    (:mod:`m3restore.pipeline.planner`); ``mask`` is an image of the missing regions to inpaint.
    An automatic plan that finds nothing to do hands the picture back unchanged, unless ``prompt``
    asks for a restoration: then it gets the one pass ``"none"`` would give it.
    """
    from m3restore.io import Image, check_output_ext, read_image, write_image
    from m3restore.pipeline.ensemble import check_ensemble
    from m3restore.pipeline.restore import Sampling, _parse_tile, load_pipeline

    console = console or Console(stderr=True)
    _parse_tile(tile)  # a bad --tile or --ensemble fails before minutes of loading
    check_ensemble(ensemble)
    from m3restore.pipeline.planner import parse_plan, read_mask
    from m3restore.pipeline.restorer import Restorer

    asked = plan is not None
    plan = parse_plan(plan or "auto")
    sampling = sampling or Sampling()
    mask_pixels = read_mask(mask)
    if uncertainty is not None:  # the map is the spread of one refiner pass's samples
        if sampling.samples < 2:
            raise ConfigError("--uncertainty needs --samples 2 or more (the map is the spread of the samples)")
        if asked and plan != "none":
            raise ConfigError("--uncertainty maps one restoration pass; use it with --plan none")
        plan = "none"
    if sampling.steps and not asked:
        # the refiner was trained on the all-in-one predictor's output and the specialists have
        # none: --steps asks for the refined one pass (with a plan asked for, Restorer.note says so)
        plan = "none"
    ext = check_output_ext(ext)
    jobs, problems = plan_jobs(inputs, output, recursive=recursive, suffix=suffix, overwrite=overwrite, ext=ext)
    report = Report(failed=list(problems))
    unc_targets = _uncertainty_targets(jobs, uncertainty, overwrite, report) if uncertainty is not None else {}
    jobs = [job for job in jobs if uncertainty is None or job.source in unc_targets]
    if jobs:
        started = time.perf_counter()
        pipe = load_pipeline(
            weights,
            device=device,
            dtype=dtype,
            tile=tile,
            ensemble=ensemble,
            text_encoder=text_encoder,
            auto_prompt=auto_prompt,
            captioner=captioner,
            sampling=sampling,
        )
        if verbose:
            d = pipe.describe()
            console.print(
                f"bundle {d['bundle']} · {d['predictor_parameters']:,} parameters · {d['device']} {d['dtype']} "
                + (f"· self-ensemble of {d['ensemble']} views " if d["ensemble"] > 1 else "")
                + f"· loaded in {time.perf_counter() - started:.1f} s"
            )
        restorer = Restorer(pipe, plan, mask=mask_pixels)
        if restorer.note and asked:
            console.print(f"[yellow]note:[/] {restorer.note}", soft_wrap=True)
        progress = eta_progress(console) if len(jobs) > 1 else spinner(console)
        with progress:
            task = progress.add_task("restoring", total=len(jobs))
            for job in jobs:
                progress.update(task, description=f"restoring {job.source.name}")
                try:
                    t0 = time.perf_counter()
                    image = read_image(job.source, max_pixels=max_pixels)
                    restored = restorer(image, prompt, seed)
                    outcome = restorer.last
                    one_pass = outcome.plan is None
                    if outcome.fell_back and explain:
                        console.print(f"{job.source}: the analyzer found nothing to plan; one pass with your words")
                    if one_pass and pipe.last.passthrough:
                        found = pipe.last.merged.analysis.summary()
                        _say_unchanged(job, found, "nothing it puts into a prompt", report, console)
                    elif not one_pass:
                        _after_plan(job, outcome.plan, report, console, explain)
                        if verbose:
                            _verbose_plan(job, outcome.plan, outcome.caption, console)
                    seconds = time.perf_counter() - t0
                    write_image(job.target, restored, overwrite=overwrite)
                    if job.source in unc_targets:
                        from m3restore.pipeline.uncertainty import uncertainty_image

                        picture = Image(uncertainty_image(pipe.last.uncertainty))
                        write_image(unc_targets[job.source], picture, overwrite=overwrite)
                except M3RestoreError as error:
                    report.failed.append((job.source, str(error)))
                except MemoryError:
                    report.failed.append((job.source, f"{job.source}: out of memory; use a smaller --tile"))
                else:
                    report.succeeded.append((job, seconds))
                    if verbose and one_pass:
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


def _say_unchanged(
    job: Job, found: str, why: str, report: Report, console: Console, hint: str = "give --prompt to restore anyway"
) -> None:
    """Record and say that ``job``'s picture is written back as it was (the analyzer found ``found``)."""
    report.unchanged.add(job.source)
    found = found or "no degradation"
    console.print(f"{job.source}: analyzer found {found}, {why}; written unchanged ({hint})", soft_wrap=True)


def _after_plan(job: Job, plan, report: Report, console: Console, explain: bool) -> None:
    report.plans[job.source] = plan.to_dict()
    if explain and not plan.flat:
        console.print(plan_table(job.source, plan))
    if plan.flat:
        from m3restore.pipeline.planner import FLAT_NOTE

        report.unchanged.add(job.source)
        console.print(f"{job.source}: {FLAT_NOTE}; written unchanged (--plan none restores it anyway)", soft_wrap=True)
    elif plan.passthrough:
        found = ", ".join(f["phrase"] for f in plan.findings)
        if plan.records:
            _say_unchanged(job, found, "no step improved it", report, console, "--plan none restores without checking")
        elif plan.planned:
            _say_unchanged(job, found, "no installed model can do what it plans", report, console)
        else:
            _say_unchanged(job, found, "nothing it plans a step for", report, console)
    for step, why in plan.unavailable:
        report.partial.append((job.source, f"{job.source}: step '{step}' not done: {why}"))


def _verbose_plan(job: Job, plan, caption: str, console: Console) -> None:
    found = ", ".join(f"{f['phrase']} ({f['probability']:.2f})" for f in plan.findings) or "no degradation detected"
    console.print(f"{job.source}: analyzer: {found}", soft_wrap=True)
    if caption:
        console.print(f"{job.source}: content: {caption!r}", soft_wrap=True)
    for i, r in enumerate(plan.records, 1):
        verdict = "kept" if r.kept else "rolled back"
        console.print(
            f"{job.source}: step {i} {r.step} · {r.model} · prompt used: {r.prompt!r} · {verdict} · {r.seconds:.2f} s",
            soft_wrap=True,
        )


def plan_table(source, plan) -> Table:
    """The plan of one image as a table: steps, order, model, why, and each step's check
    (a dry run from ``Planner.plan`` shows the steps and the model each would try first)."""
    found = ", ".join(f["phrase"] for f in plan.findings) or "nothing"
    table = Table(title=f"{source} · plan {plan.mode} · analyzer found: {found}", title_justify="left")
    dry = not plan.records and bool(plan.planned) and bool(plan.why)
    columns = ("#", "step", "model tried first", "why") if dry else (
        "#", "step", "model", "why", "prompt", "check", "result", "s"
    )  # fmt: skip
    for col in columns:
        table.add_column(col)
    if dry:
        for i, step in enumerate(plan.planned, 1):
            table.add_row(str(i), step, plan.first_choice.get(step, "[red]none installed[/]"), plan.why.get(step, ""))
        return table
    for i, r in enumerate(plan.records, 1):
        verdict = "[green]kept[/]" if r.kept else "[red]rolled back[/]"
        if not r.kept and r.changed_nothing:
            verdict += " (changed nothing)"
        table.add_row(
            str(i), r.step, r.model, r.why, r.prompt, _check_text(r), verdict, f"{r.seconds:.2f}",
        )  # fmt: skip
    for step, why in plan.unavailable:
        table.add_row("", step, "[red]none[/]", why, "", "", "[yellow]skipped[/]", "")
    notes = [f"{s}: its specialist changed nothing, so no other model was tried" for s in plan.nothing_found]
    if plan.budget_spent:
        notes.append("step budget spent")
    table.caption = "; ".join(notes) or None
    return table


def _check_text(record) -> str:
    """A step's direct checks and the analyzer's whole damage reading, before → after."""
    parts = [f"{c['measure']} {c['before']:.3g} → {c['after']:.3g}" for c in record.checks]
    return "; ".join([*parts, f"analyzer damage {record.damage_before:.2f} → {record.damage_after:.2f}"])


def _uncertainty_targets(jobs: list[Job], where, overwrite: bool, report: Report) -> dict[Path, Path]:
    """Where each job's uncertainty map goes: ``where`` itself for one job, else inside it."""
    where = Path(where)
    if len(jobs) == 1 and not where.is_dir():
        targets = {jobs[0].source: where}
        _ensure_writable_folder(where.parent)
    else:
        _ensure_writable_folder(where)
        targets = {}
        claimed: dict[Path, Path] = {}
        for job in jobs:
            target = where / f"{job.source.stem}_uncertainty.png"
            if target in claimed:
                report.failed.append((job.source, f"{target}: also the uncertainty map of {claimed[target]}"))
                continue
            claimed[target] = job.source
            targets[job.source] = target
    for source, target in list(targets.items()):
        if target.exists() and not overwrite:
            report.failed.append((source, f"{target}: exists; use --overwrite to replace it"))
            del targets[source]
    return targets


def _steps_done(report: Report, source: Path) -> str:
    """The kept steps of a planned restoration ("brighten+denoise, dejpeg"), "" for one pass."""
    plan = report.plans.get(source)
    return ", ".join(s["step"] for s in plan["steps"] if s["kept"]) if plan else ""


def _summarise(report: Report, console: Console, show_table: bool) -> None:
    planned = any(job.source in report.plans for job, _ in report.succeeded)
    if show_table and report.succeeded:
        table = Table(title="restored", show_lines=False)
        table.add_column("input")
        table.add_column("output")
        if planned:
            table.add_column("steps")
        table.add_column("seconds", justify="right")
        for job, seconds in report.succeeded:
            same = " (unchanged)" if job.source in report.unchanged else ""
            steps = [_steps_done(report, job.source) or "–"] if planned else []
            table.add_row(str(job.source), f"{job.target}{same}", *steps, f"{seconds:.2f}")
        console.print(table)
    elif report.succeeded:
        job, seconds = report.succeeded[0]
        verb = "wrote unchanged" if job.source in report.unchanged else "restored"
        steps = _steps_done(report, job.source)
        console.print(f"{verb} {job.source} → {job.target} ({steps + ', ' if steps else ''}{seconds:.2f} s)")
    for _path, message in report.failed:
        console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    for _path, message in report.partial:
        console.print(f"[yellow]partial:[/] {message}", soft_wrap=True)
    if report.failed and (report.succeeded or len(report.failed) > 1):
        console.print(f"{len(report.succeeded)} restored, {len(report.failed)} failed")

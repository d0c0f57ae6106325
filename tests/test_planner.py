"""The planner: detection → measured order → model choice → verify/roll back → re-plan, and its CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from cli_helpers import one_error_line, run

from m3restore.caption.degradation import Analysis, AnalyzerConfig, DegradationAnalyzer, Finding
from m3restore.errors import ConfigError, WeightsError
from m3restore.io import Image, read_image, write_image
from m3restore.pipeline.batch import plan_table
from m3restore.pipeline.planner import (
    ORDER,
    STEPS,
    Candidate,
    Planner,
    Pool,
    inpaint,
    parse_plan,
    step_prompt,
    steps_for,
    user_named,
    user_request,
)
from m3restore.weights import extend_bundle, set_index_fields

FLAGS = {"noise": 0, "motion-blur": 1, "jpeg": 2}  # pixel (0, 0) channel = 1 while the damage is there


def picture(*damage: str) -> np.ndarray:
    img = np.full((8, 8, 3), 0.5, np.float32)
    img[0, 0] = 0
    for name in damage:
        img[0, 0, FLAGS[name]] = 1
    return img


def fake_analyze(img: np.ndarray) -> Analysis:
    findings = []
    for name, channel in FLAGS.items():
        present = img[0, 0, channel] > 0.5
        findings.append(Finding(name, 0.9 if present else 0.05, 0.7, bool(present)))
    return Analysis(findings)


def fixer(name: str, clears: str | None = None, adds: str | None = None, calls: list | None = None, nudge=0.0):
    """A network stand-in; ``nudge`` shifts the other pixels (a visible change that fixes nothing)."""

    def run(img, step, prompt):
        if calls is not None:
            calls.append((name, step, prompt))
        out = img.copy()
        out[1:, 1:] += nudge
        if clears:
            out[0, 0, FLAGS[clears]] = 0
        if adds:
            out[0, 0, FLAGS[adds]] = 1
        return out

    return run


class NoPipe:
    analyzer = None
    bundle = None


STEP_FLAG = {"denoise": "noise", "deblur": "motion-blur", "dejpeg": "jpeg"}


def recording_network(name: str, fixes: tuple[str, ...], calls: list) -> Candidate:
    """A network candidate that clears the flag of every step it is asked for and records
    (name, step) in ``calls``; a specialist (one step) is tried before a multi-step network."""

    def run(img, step, prompt):
        calls.append((name, step))
        out = img.copy()
        for s in step.split("+"):
            out[0, 0, FLAGS[STEP_FLAG[s]]] = 0
        return out

    return Candidate(name, fixes, "network", run, 20 if len(fixes) == 1 else 30)


def no_checks(steps, before, after):
    return []  # flag pictures have no sharpness or noise to measure: the analyzer alone judges


def planner(candidates, **kwargs) -> Planner:
    kwargs.setdefault("check", no_checks)
    return Planner(NoPipe(), Pool(candidates), analyze=fake_analyze, **kwargs)


def test_steps_follow_the_measured_order():
    analysis = fake_analyze(picture("noise", "motion-blur", "jpeg"))
    steps = steps_for(analysis)
    assert sorted(steps) == ["deblur", "dejpeg", "denoise"]
    assert steps == [s for s in ORDER if s in steps]
    assert set(ORDER) == set(STEPS)


def test_a_step_that_makes_things_worse_is_rolled_back_and_the_next_model_tried():
    calls = []
    pool = [
        Candidate("blurry-maker", ("deblur",), "network", fixer("bad", adds="noise", calls=calls), priority=10),
        Candidate("deblurrer", ("deblur",), "network", fixer("good", clears="motion-blur", calls=calls), priority=20),
        Candidate("denoiser", ("denoise",), "network", fixer("dn", clears="noise", calls=calls), priority=20),
    ]
    result = planner(pool).run(picture("motion-blur"), "auto")
    records = result.report.records
    assert [(r.model.split(" ")[0], r.kept) for r in records] == [("blurry-maker", False), ("deblurrer", True)]
    assert result.image[0, 0].tolist() == [0, 0, 0]  # the rolled-back noise is gone too
    assert records[0].damage_after > records[0].damage_before
    assert result.report.kept_steps() == ["deblur"] and not result.report.partial


def test_replanning_drops_what_is_fixed_and_adds_nothing_new():
    calls = []
    pool = [
        Candidate("denoiser", ("denoise",), "network", fixer("n", clears="noise", calls=calls), priority=20),
        Candidate("dejpeg", ("dejpeg",), "network", fixer("j", clears="jpeg", calls=calls), priority=20),
    ]

    def smoothing(img, step, prompt):  # deblurring also clears the JPEG blocks, and leaves what looks like noise
        out = img.copy()
        out[0, 0, FLAGS["motion-blur"]] = 0
        out[0, 0, FLAGS["jpeg"]] = 0
        out[0, 0, FLAGS["noise"]] = 1
        return out

    pool.append(Candidate("deblurrer", ("deblur",), "network", smoothing, priority=20))
    result = planner(pool).run(picture("motion-blur", "jpeg"), "auto")
    assert result.report.planned == [s for s in ORDER if s in ("deblur", "dejpeg")]
    assert result.report.kept_steps() == ["deblur"]  # dejpeg: fixed already; denoise: only seen in the output
    assert calls == []
    assert [f["name"] for f in result.report.final_findings] == ["noise"]


def test_fixed_plan_keeps_its_order_and_the_prompt_carries_content_and_severity():
    calls = []
    pool = [
        Candidate("dn", ("denoise",), "network", fixer("dn", clears="noise", calls=calls)),
        Candidate("db", ("deblur",), "network", fixer("db", clears="motion-blur", calls=calls)),
    ]
    result = planner(pool).run(picture("noise", "motion-blur"), ["denoise", "deblur"], prompt="street sign")
    assert [c[1] for c in calls] == ["denoise", "deblur"]
    assert calls[0][2] == "strong noise, street sign"
    assert result.report.mode == "fixed: denoise,deblur"


def test_a_step_nothing_can_do_is_reported_and_the_rest_still_runs():
    pool = [Candidate("dn", ("denoise",), "network", fixer("dn", clears="noise"))]
    result = planner(pool).run(picture("noise", "jpeg"), "auto")
    assert result.report.kept_steps() == ["denoise"]
    assert result.report.partial and result.report.unavailable[0][0] == "dejpeg"


def test_a_grey_file_is_not_planned_for_colour():
    def grey_and_noisy(img):
        present = img[0, 0, FLAGS["noise"]] > 0.5
        noise = Finding("noise", 0.9 if present else 0.05, 0.7, bool(present))
        return Analysis([Finding("greyscale", 1.0, 1.0, True), noise])

    pool = [Candidate("dn", ("denoise",), "network", fixer("dn", clears="noise"))]
    make = Planner(NoPipe(), Pool(pool), analyze=grey_and_noisy, check=no_checks)
    stored_grey = make.run(picture("noise"), "auto", grey=True).report
    assert stored_grey.planned == ["denoise"] and stored_grey.kept_steps() == ["denoise"] and not stored_grey.partial
    assert make.plan(picture("noise"), "auto", grey=True).planned == ["denoise"]
    stored_rgb = make.run(picture("noise"), "auto").report  # black and white is mostly chosen: no colour
    assert stored_rgb.planned == ["denoise"] and not stored_rgb.partial
    wants_colour = make.run(picture("noise"), "auto", prompt="greyscale").report  # unless asked for
    assert "colorize" in wants_colour.planned and wants_colour.unavailable == [
        ("colorize", "no installed model declares the step 'colorize'")
    ]
    asked = make.run(picture("noise"), ["colorize"], grey=True).report  # asked for by name: said why not
    assert asked.unavailable == [("colorize", "a greyscale file is written back greyscale")]


def test_clean_image_passes_through_unchanged():
    img = picture()
    result = planner([]).run(img, "auto")
    assert result.report.passthrough and np.array_equal(result.image, img) and not result.report.records


def test_a_flat_picture_is_left_as_it_is():
    calls, seen = [], []
    pool = [Candidate("dn", ("denoise",), "network", fixer("dn", clears="noise", calls=calls))]
    make = Planner(NoPipe(), Pool(pool), analyze=lambda img: seen.append(img) or fake_analyze(img), check=no_checks)
    black = np.zeros((8, 8, 3), np.float32)
    red = np.zeros((8, 8, 3), np.float32) + np.float32([0.8, 0.1, 0.1])
    red[3:5, 3:5, 0] += 1 / 255  # one level of difference is still flat
    for img in (black, red, np.full((1, 1, 3), 0.3, np.float32)):
        result = make.run(img, "auto", prompt="heavy noise")  # the words do not make it a restoration
        assert result.report.flat and result.report.passthrough and result.image is img
        assert make.plan(img, "auto").flat and result.report.to_dict()["flat"]
    assert calls == [] and seen == []  # nothing planned, the analyzer not even asked
    two_levels = black.copy()
    two_levels[0, 0, 2] = 2 / 255
    assert not make.plan(two_levels, "auto").flat
    assert make.run(black, ["denoise"]).report.records  # a fixed plan runs as told


def test_step_budget_stops_the_run():
    pool = [Candidate(f"useless{i}", ("denoise",), "network", fixer("u", nudge=0.05), priority=i) for i in range(5)]
    result = planner(pool, budget=3).run(picture("noise"), "auto")
    assert len(result.report.records) == 3 and result.report.budget_spent
    json.dumps(result.report.to_dict())  # everything in the record is JSON


def test_user_words_request_steps():
    assert user_request("street sign with heavy motion blur, no noise") == (["deblur"], "street sign")
    assert user_request(None) == ([], "")
    calls = []
    pool = [Candidate("dn", ("denoise",), "network", fixer("dn", clears="noise", calls=calls))]
    planner(pool).run(picture(), "auto", prompt="noisy photo")  # the analyzer saw nothing; the user did
    assert [c[1] for c in calls] == ["denoise"]


def test_dry_run_names_the_first_model():
    pool = [
        Candidate("general", ("denoise", "deblur"), "network", fixer("g"), priority=30),
        Candidate("specialist", ("denoise",), "network", fixer("s"), priority=20),
    ]
    report = planner(pool).plan(picture("noise", "motion-blur"))
    assert report.first_choice["denoise"].startswith("specialist") and report.first_choice["deblur"].startswith(
        "general"
    )
    assert not report.records


@pytest.mark.parametrize("text", ["sharpen", ",", "denoise,wat"])
def test_unknown_plan_steps_list_the_valid_ones(text):
    with pytest.raises(ConfigError, match="valid: auto, none"):
        parse_plan(text)


def test_parse_plan():
    assert parse_plan("AUTO") == "auto" and parse_plan("none") == "none"
    assert parse_plan("denoise, deblur") == ["denoise", "deblur"]


def test_opencv_inpainting_fills_only_the_mask():
    img = np.tile(np.linspace(0, 1, 32, dtype=np.float32)[None, :, None], (32, 1, 3))
    holed = img.copy()
    mask = np.zeros((32, 32), bool)
    mask[10:14, 10:20] = True
    holed[mask] = 0
    out = inpaint(holed, mask)
    assert np.array_equal(out[~mask], holed[~mask])
    assert np.abs(out[mask] - img[mask]).mean() < np.abs(holed[mask] - img[mask]).mean() / 4


def test_planner_needs_an_analyzer():
    with pytest.raises(WeightsError, match="analyzer"):
        Planner(NoPipe(), Pool([]))


# -- pool discovery and the command line --------------------------------------------------------
@pytest.fixture(scope="module")
def planning_bundle(tiny_bundle, tmp_path_factory):
    root = tmp_path_factory.mktemp("planning")
    path = root / "main"
    shutil.copytree(tiny_bundle, path)
    torch.manual_seed(0)
    extend_bundle(path, {"analyzer": DegradationAnalyzer(AnalyzerConfig(width=8, hidden=16))})
    set_index_fields(path, fixes=["denoise", "deblur"])
    special = root / "extra" / "denoise-specialist"
    shutil.copytree(tiny_bundle, special)
    set_index_fields(special, fixes=["denoise"], name="denoise-specialist")
    return path


def test_a_bundle_in_the_search_path_joins_the_pool(planning_bundle, monkeypatch):
    from m3restore.pipeline.restore import load_pipeline

    monkeypatch.setenv("M3RESTORE_WEIGHTS", str(planning_bundle.parent / "extra"))
    pipe = load_pipeline(str(planning_bundle), device="cpu")
    pool = Pool.discover(pipe)
    denoisers = [c.name for c in pool.for_step("denoise")]
    assert denoisers[0] == "denoise-specialist" and pipe.bundle.name in denoisers  # specialists first
    assert "denoise-specialist" not in [c.name for c in pool.for_step("deblur")]
    assert pool.for_step("inpaint") == [] and "--mask" in pool.why_not("inpaint")
    masked = Pool.discover(pipe, mask=np.zeros((4, 4), bool))
    assert [c.kind for c in masked.for_step("inpaint")] == ["classical"]


def test_a_specialist_runs_like_the_main_pipeline(planning_bundle):
    from m3restore.pipeline.planner import _lazy_pipeline
    from m3restore.pipeline.restore import load_pipeline

    pipe = load_pipeline(str(planning_bundle), device="cpu", tile=64, ensemble=4)
    special = _lazy_pipeline(pipe, planning_bundle.parent / "extra" / "denoise-specialist")()
    assert (special.device, special.dtype, special.tile, special.ensemble) == (pipe.device, pipe.dtype, 64, 4)


def test_cli_explain_and_json_plan(planning_bundle, photo_png, tmp_path):
    code, output = run("restore", photo_png, "-o", tmp_path / "o.png", "--weights", planning_bundle, "--explain",
                       "--plan", "denoise,colorize")  # fmt: skip
    assert code == 3, output  # colorize: nothing installed can do it → partial
    assert "fixed: denoise,colorize" in output and "colorize" in output and "partial:" in output
    assert (tmp_path / "o.png").exists()
    code, output = run("plan", photo_png, "--weights", planning_bundle, "--json", "--plan", "denoise")
    assert code == 0, output
    plans = json.loads(output)
    assert plans[0]["planned"] == ["denoise"] and plans[0]["steps"] == []


def test_cli_writes_a_flat_picture_unchanged(planning_bundle, tmp_path):
    flat = tmp_path / "black.png"
    write_image(flat, Image(np.zeros((24, 32, 3), np.float32)))
    code, output = run("restore", flat, "-o", tmp_path / "o.png", "--weights", planning_bundle, "--prompt", "noise")
    assert code == 0 and "one flat colour" in output and "written unchanged" in output, output
    assert np.array_equal(read_image(tmp_path / "o.png").pixels, read_image(flat).pixels)
    code, output = run("plan", flat, "--weights", planning_bundle)
    assert code == 0 and "one flat colour" in output and "restore would write it unchanged" in output, output


def test_cli_bad_plan_is_one_line(planning_bundle, photo_png, tmp_path):
    code, output = run("restore", photo_png, "-o", tmp_path / "o.png", "--weights", planning_bundle, "--plan", "zap")
    assert code == 2 and one_error_line(output) and "valid: auto, none" in output
    assert not (tmp_path / "o.png").exists()


def test_cli_plan_none_and_auto_without_analyzer(tiny_bundle, photo_png, tmp_path):
    code, output = run("restore", photo_png, "-o", tmp_path / "a.png", "--weights", tiny_bundle, "--plan", "none")
    assert code == 0, output
    code, output = run("restore", photo_png, "-o", tmp_path / "b.png", "--weights", tiny_bundle, "--plan", "auto")
    assert code == 0 and "no degradation analyzer" in output
    # the default is auto; without an analyzer it quietly becomes the one pass
    code, output = run("restore", photo_png, "-o", tmp_path / "c.png", "--weights", tiny_bundle)
    assert code == 0 and "no degradation analyzer" not in output and (tmp_path / "c.png").exists()


def test_faint_low_light_plans_no_brighten_step():
    faint = Analysis([Finding("low-light", 0.9, 0.1, True), Finding("noise", 0.9, 0.2, True)])
    mild = Analysis([Finding("low-light", 0.9, 0.25, True)])
    strong = Analysis([Finding("low-light", 0.9, 0.9, True)])
    assert steps_for(faint) == ["denoise"] and steps_for(mild) == steps_for(strong) == ["brighten"]
    assert step_prompt("brighten", mild)[0] == "mild low light"
    assert step_prompt("brighten", strong)[0] == "moderate low light"  # capped


def test_one_network_first_for_several_steps_gets_one_joint_pass():
    calls = []

    def fixes_both(img, step, prompt):
        calls.append((step, prompt))
        out = img.copy()
        out[0, 0, FLAGS["noise"]] = out[0, 0, FLAGS["motion-blur"]] = 0
        return out

    pool = [Candidate("all-in-one", ("denoise", "deblur"), "network", fixes_both)]
    result = planner(pool).run(picture("noise", "motion-blur"), "auto")
    assert len(calls) == 1 and "noise" in calls[0][1] and "motion blur" in calls[0][1]
    assert result.report.records[0].step == "+".join(s for s in ORDER if s in ("denoise", "deblur"))
    assert result.report.records[0].kept and result.image[0, 0].tolist() == [0, 0, 0]


def test_a_specialist_does_not_break_up_a_joint_pass_but_takes_its_step_alone():
    calls = []
    pool = [
        recording_network("all-in-one", ("denoise", "deblur"), calls),
        recording_network("denoiser", ("denoise",), calls),
    ]
    planner(pool).run(picture("noise", "motion-blur"), "auto")
    assert calls == [("all-in-one", "+".join(s for s in ORDER if s in ("denoise", "deblur")))]
    calls.clear()
    result = planner(pool).run(picture("noise"), "auto")
    assert calls == [("denoiser", "denoise")] and result.report.kept_steps() == ["denoise"]


def test_a_rolled_back_joint_pass_falls_back_to_single_steps():
    calls = []

    def only_one_at_a_time(img, step, prompt):
        calls.append(step)
        out = img.copy()
        if "+" in step:
            out[0, 0, FLAGS["jpeg"]] = 1  # the joint pass makes things worse
        else:
            out[0, 0, FLAGS["noise" if step == "denoise" else "motion-blur"]] = 0
        return out

    pool = [Candidate("all-in-one", ("denoise", "deblur"), "network", only_one_at_a_time)]
    result = planner(pool).run(picture("noise", "motion-blur"), "auto")
    assert "+" in calls[0] and sorted(calls[1:]) == ["deblur", "denoise"]
    assert sorted(result.report.kept_steps()) == ["deblur", "denoise"]


def test_brighten_asks_for_moderate_low_light_at_most():
    dark = Analysis([Finding("low-light", 0.99, 0.9, True), Finding("noise", 0.9, 0.9, True)])
    words, why = step_prompt("brighten", dark)
    assert words == "moderate low light" and "strong low light" in why and "as moderate" in why
    assert step_prompt("denoise", dark)[0] == "strong noise"  # other steps keep the analyzer's word
    assert step_prompt("brighten", Analysis([Finding("low-light", 0.99, 0.4, True)]))[0] == "moderate low light"


def test_a_step_asks_for_what_was_detected_even_when_a_sibling_label_is_more_probable():
    # Per-label thresholds: motion blur at p 0.22 is below its threshold, defocus at 0.2 above its own.
    analysis = Analysis([Finding("motion-blur", 0.22, 0.5, False), Finding("defocus", 0.2, 0.5, True)])
    words, why = step_prompt("deblur", analysis)
    assert words == "moderate defocus blur" and why.startswith("analyzer: moderate defocus blur")


def test_cli_restore_names_the_kept_steps(planning_bundle, photo_png, tmp_path, monkeypatch):
    import m3restore.caption.degradation as degradation

    monkeypatch.setattr(degradation, "analyze", lambda model, image: Analysis([Finding("noise", 0.9, 0.5, True)]))
    monkeypatch.setattr(Planner, "_verdict", staticmethod(lambda *args: True))
    code, output = run("restore", photo_png, "-o", tmp_path / "o.png", "--weights", planning_bundle)
    assert code == 0 and "(denoise, " in output, output
    second = tmp_path / "more" / "b.png"
    second.parent.mkdir()
    second.write_bytes(photo_png.read_bytes())
    code, output = run("restore", photo_png, second, "-o", tmp_path / "folder", "--weights", planning_bundle)
    assert code == 0 and "steps" in output and output.count("denoise") >= 2, output


def test_the_users_kind_and_severity_of_damage_win_over_the_analyzers():
    defocus = Analysis([Finding("defocus", 0.9, 0.5, True), Finding("noise", 0.9, 0.5, True)])
    said = user_named("street sign, motion blur and strong noise")
    assert said == {"motion-blur": None, "noise": "strong"}
    words, why = step_prompt("deblur", defocus, named=said)
    assert words == "moderate motion blur" and "defocus" in why and "your words: motion blur" in why
    assert step_prompt("denoise", defocus, named=said)[0] == "strong noise"
    assert step_prompt("deblur", defocus)[0] == "moderate defocus blur"  # no words: the analyzer's
    nothing = Analysis([])
    assert step_prompt("deblur", nothing, named=said) == ("motion blur", "asked for in your words")


def test_a_specialist_unsure_of_the_kind_of_blur_is_told_none():
    unsure = Analysis([Finding("motion-blur", 0.1, 0.5, False), Finding("defocus", 0.3, 0.5, True)])
    sure = Analysis([Finding("defocus", 0.9, 0.5, True)])
    words, why = step_prompt("deblur", unsure, "licence plate", specialist=True)
    assert words == "licence plate" and "defocus" in why and "kind unsure" in why
    assert step_prompt("deblur", unsure, specialist=False)[0] == "moderate defocus blur"  # an all-in-one needs it
    assert step_prompt("deblur", sure, specialist=True)[0] == "moderate defocus blur"
    said = user_named("motion blur")
    assert step_prompt("deblur", unsure, named=said, specialist=True)[0] == "moderate motion blur"
    noise = Analysis([Finding("noise", 0.3, 0.5, True)])  # one label: there is no kind to get wrong
    assert step_prompt("denoise", noise, specialist=True)[0] == "moderate noise"


def test_an_unsure_specialist_rolled_back_untold_is_tried_again_with_the_analyzers_kind():
    calls = []
    unsure = Analysis([Finding("defocus", 0.3, 0.5, True), Finding("noise", 0.05, 0.7, False)])

    def analyze(img):
        if img[0, 0, 0] > 0.5:
            return Analysis([Finding("defocus", 0.3, 0.5, True), Finding("noise", 0.9, 0.7, True)])
        return unsure if img[0, 0, 1] > 0.5 else Analysis([Finding("defocus", 0.05, 0.1, False)])

    def specialist(img, step, prompt):  # told nothing it adds noise; told the kind it clears the blur
        calls.append(prompt)
        out = img.copy()
        out[0, 0, 0 if prompt == "" else 1] = 1 if prompt == "" else 0
        return out

    pool = [
        Candidate("deblurrer", ("deblur",), "network", specialist, priority=20),
        Candidate("all-in-one", ("deblur", "denoise"), "network", fixer("aio", calls=calls), priority=30),
    ]
    result = Planner(NoPipe(), Pool(pool), analyze=analyze, check=no_checks).run(picture("motion-blur"), "auto")
    assert calls == ["", "moderate defocus blur"]
    assert [(r.prompt, r.kept) for r in result.report.records] == [("", False), ("moderate defocus blur", True)]
    assert "kind unsure" in result.report.records[0].why
    dry = Planner(NoPipe(), Pool(pool), analyze=analyze, check=no_checks).plan(picture("motion-blur"))
    assert "kind unsure" in dry.why["deblur"]  # the dry run says how its first model is told


def test_a_faint_finding_stays_out_of_a_joint_pass_unless_the_user_names_it():
    calls = []

    def faint_jpeg(img):  # strong blur, and JPEG artefacts the analyzer finds faint (strength 0.07)
        blur = img[0, 0, FLAGS["motion-blur"]] > 0.5
        jpeg = img[0, 0, FLAGS["jpeg"]] > 0.5
        blurred = Finding("motion-blur", 0.9 if blur else 0.05, 0.8, blur)
        return Analysis([blurred, Finding("jpeg", 0.9 if jpeg else 0.05, 0.07, jpeg)])

    pool = [
        recording_network("all-in-one", ("deblur", "dejpeg"), calls),
        recording_network("deblurrer", ("deblur",), calls),
    ]
    run_plan = Planner(NoPipe(), Pool(pool), analyze=faint_jpeg, check=no_checks).run
    result = run_plan(picture("motion-blur", "jpeg"), "auto")
    assert calls == [("deblurrer", "deblur"), ("all-in-one", "dejpeg")]
    assert result.report.kept_steps() == ["deblur", "dejpeg"]
    calls.clear()
    run_plan(picture("motion-blur", "jpeg"), "auto", prompt="jpeg artifacts")
    assert calls == [("all-in-one", "+".join(s for s in ORDER if s in ("deblur", "dejpeg")))]


def test_the_python_restorer_plans_like_the_command(planning_bundle, tiny_bundle, monkeypatch):
    from m3restore import load_restorer

    monkeypatch.setenv("M3RESTORE_WEIGHTS", str(planning_bundle.parent / "extra"))
    grey = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    restorer = load_restorer(str(planning_bundle), device="cpu", plan="denoise")
    out = restorer(grey)
    assert out.shape == grey.shape and out.dtype == np.uint8
    assert restorer.last.plan.planned == ["denoise"]
    assert restorer.last.plan.records[0].model.startswith("denoise-specialist")  # tried before the bundle's own
    one_pass = load_restorer(str(planning_bundle), device="cpu", plan="none")
    np.testing.assert_array_equal(one_pass(grey), one_pass.pipe(grey))
    assert one_pass.last.plan is None
    bare = load_restorer(str(tiny_bundle), device="cpu")
    assert "no degradation analyzer" in bare.note and bare(grey).shape == grey.shape and bare.last.plan is None
    with pytest.raises(ConfigError, match="needs a bundle with a degradation analyzer"):
        load_restorer(str(tiny_bundle), device="cpu", plan="denoise")


def test_eval_scores_what_restore_gives_unless_told_plan_none(planning_bundle, photo_png, tmp_path, monkeypatch):
    monkeypatch.setenv("M3RESTORE_WEIGHTS", str(planning_bundle.parent / "extra"))
    (tmp_path / "in").mkdir()
    (tmp_path / "gt").mkdir()
    shutil.copy(photo_png, tmp_path / "in" / "a.png")
    shutil.copy(photo_png, tmp_path / "gt" / "a.png")
    folders = ("--input", tmp_path / "in", "--target", tmp_path / "gt", "--weights", planning_bundle)
    labels = {}
    for plan in ("auto", "none"):
        code, output = run("eval", *folders, "--prompt", "noise", "--plan", plan, "--out", tmp_path / plan)
        assert code == 0, output
        summary = json.loads((tmp_path / plan / "summary.json").read_text())
        labels[plan] = [m["label"] for m in summary["methods"].values()]
    assert labels == {"auto": ["input", "tiny+plan"], "none": ["input", "tiny"]}
    code, output = run("eval", *folders, "--plan", "zap", "--out", tmp_path / "bad")
    assert code == 2 and one_error_line(output) and "valid: auto, none" in output
    assert not (tmp_path / "bad").exists()


def test_caption_and_plan_name_the_pictures_they_do_not_read(planning_bundle, photo_png, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(photo_png, folder / "a.png")
    (folder / "b.heic").write_bytes(b"not read")
    for command in ("caption", "plan"):
        code, output = run(command, folder, "--weights", planning_bundle)
        assert code == 1 and one_error_line(output), output
        assert "b.heic: HEIC is not read by m3restore" in output and "a.png" in output


def test_a_specialist_that_changes_nothing_ends_its_step():
    calls = []
    pool = [
        Candidate("denoiser", ("denoise",), "network", fixer("dn", calls=calls), priority=20),
        Candidate("all-in-one", ("denoise", "deblur"), "network", fixer("aio", clears="noise", calls=calls)),
    ]
    result = planner(pool).run(picture("noise"), "auto")
    assert [c[0] for c in calls] == ["dn"]  # the all-in-one would have "fixed" it: not tried
    record = result.report.records[0]
    assert not record.kept and record.changed_nothing and record.change_db == 99.0
    assert result.report.nothing_found == ["denoise"] and result.report.to_dict()["nothing_found"] == ["denoise"]
    assert "changed nothing" in str(plan_table("x.png", result.report).caption)
    # a change of 47.4 dB (the denoiser on clean Kodak24 kodim13, 1.1 levels in 255 RMS) is nothing
    calls.clear()
    pool[0] = Candidate("denoiser", ("denoise",), "network", fixer("dn", calls=calls, nudge=1.25 / 255), priority=20)
    result = planner(pool).run(picture("noise"), "auto")
    assert [c[0] for c in calls] == ["dn"] and 46 < result.report.records[0].change_db < 48
    assert result.report.nothing_found == ["denoise"]
    # a specialist that changes the picture without fixing it leaves the next model its turn
    calls.clear()
    pool[0] = Candidate("denoiser", ("denoise",), "network", fixer("dn", calls=calls, nudge=0.05), priority=20)
    result = planner(pool).run(picture("noise"), "auto")
    assert [c[0] for c in calls] == ["dn", "aio"] and result.report.kept_steps() == ["denoise"]
    assert not result.report.records[0].changed_nothing and not result.report.nothing_found

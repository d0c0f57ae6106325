"""The diffusion refiner: network, diffusers schedulers, sampling, pipeline, CLI and training stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cli_helpers import one_error_line, run
from PIL import Image as PILImage

from m3restore.config import from_dict
from m3restore.diffusion.refine import SAMPLERS, check_steps, diffusion_loss, make_sampler, refine, training_scheduler
from m3restore.errors import ConfigError, WeightsError
from m3restore.models.m3unet import M3UNet, M3UNetConfig
from m3restore.models.refiner import Refiner, RefinerConfig
from m3restore.pipeline.restore import RestorePipeline, Sampling
from m3restore.pipeline.uncertainty import uncertainty_image
from m3restore.text.encoder import TextEmbedding
from m3restore.weights import open_bundle, save_bundle

TEXT_DIM = 16


def tiny_refiner(seed: int = 0, text_dim: int = TEXT_DIM, prediction_type: str = "sample") -> Refiner:
    torch.manual_seed(seed)
    network = M3UNetConfig(
        width=8,
        enc_blocks=(1, 1),
        dec_blocks=(1, 1),
        middle_blocks=1,
        text_dim=text_dim,
        cond_dim=16,
        time_embedding=True,
        global_residual=False,
        control_channels=6,
    )
    net = Refiner(RefinerConfig(network=network, prediction_type=prediction_type))
    with torch.no_grad():  # trained-like: no parameter left at its zero initialisation
        for p in net.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(std=0.05)
    return net.eval()


def tiny_predictor(text_dim: int = TEXT_DIM) -> M3UNet:
    torch.manual_seed(1)
    cfg = M3UNetConfig(width=8, enc_blocks=(1, 1), dec_blocks=(1, 1), middle_blocks=1, text_dim=text_dim, cond_dim=16)
    return M3UNet(cfg).eval()


def text(b: int = 1, seed: int = 0) -> TextEmbedding:
    g = torch.Generator().manual_seed(seed)
    return TextEmbedding(
        tokens=torch.randn(b, 3, TEXT_DIM, generator=g),
        mask=torch.ones(b, 3, dtype=torch.bool),
        pooled=torch.randn(b, TEXT_DIM, generator=g),
        present=torch.ones(b, dtype=torch.bool),
    )


def images(seed: int = 0, size: int = 32):
    g = torch.Generator().manual_seed(seed)
    degraded = torch.rand(1, 3, size, size, generator=g)
    estimate = (degraded + 0.05 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)
    return degraded, estimate


# -- network ----------------------------------------------------------------------------------
def test_pixel_control_starts_as_nothing_and_then_conditions():
    torch.manual_seed(0)
    net = Refiner(tiny_refiner().config)  # fresh: zero-initialised control outputs
    x, t = torch.randn(1, 3, 32, 32), torch.tensor([500])
    a, b = images(0), images(1)
    with torch.no_grad():
        assert torch.equal(net(x, t, *a), net(x, t, *b))
        for out in net.net.control.outs:
            out.weight.normal_(std=0.1)
        assert not torch.allclose(net(x, t, *a), net(x, t, *b))


def test_control_errors():
    plain = tiny_predictor()
    with pytest.raises(ValueError, match="takes no control"):
        plain(torch.rand(1, 3, 32, 32), control=torch.rand(1, 6, 32, 32))
    net = tiny_refiner()
    with pytest.raises(ValueError, match="needs control"):
        net.net(torch.rand(1, 3, 32, 32), None, torch.tensor([1]))
    with pytest.raises(ValueError, match="do not match"):
        net.net(torch.rand(1, 3, 32, 32), None, torch.tensor([1]), control=torch.rand(1, 6, 16, 16))


def test_refiner_config_is_checked():
    with pytest.raises(ValueError, match="time_embedding"):
        RefinerConfig(network=M3UNetConfig(control_channels=6, global_residual=False))
    with pytest.raises(ValueError, match="prediction_type"):
        RefinerConfig(prediction_type="score")
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(RefinerConfig, {"networkk": {}})


def test_refiner_round_trips_through_a_bundle(tmp_path):
    net = tiny_refiner()
    save_bundle(tmp_path / "b", {"predictor": tiny_predictor(), "refiner": net})
    loaded = open_bundle(tmp_path / "b").load("refiner")
    assert loaded.config == net.config
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


# -- diffusion ----------------------------------------------------------------------------------
def test_schedulers_come_from_diffusers():
    import diffusers

    cfg = tiny_refiner().config
    assert isinstance(training_scheduler(cfg), diffusers.DDPMScheduler)
    kinds = {name: type(make_sampler(name, cfg)) for name in SAMPLERS}
    assert kinds == {
        "ddim": diffusers.DDIMScheduler,
        "dpm-solver++": diffusers.DPMSolverMultistepScheduler,
        "euler": diffusers.EulerDiscreteScheduler,
    }
    with pytest.raises(ConfigError, match="valid: ddim, dpm-solver\\+\\+, euler"):
        make_sampler("heun", cfg)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_training_lowers_the_loss_for_every_prediction_type(prediction_type):
    net = tiny_refiner(prediction_type=prediction_type).train()
    scheduler = training_scheduler(net.config)
    degraded, estimate = images(0)
    target = (estimate + 0.1 * torch.sin(torch.arange(32.0) / 2)).clamp(0, 1)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss(seed):
        return diffusion_loss(net, scheduler, degraded, estimate, target, generator=torch.Generator().manual_seed(seed))

    with torch.no_grad():
        before = sum(loss(s).item() for s in range(8))
    for step in range(40):
        opt.zero_grad()
        loss(100 + step).backward()
        opt.step()
    with torch.no_grad():
        after = sum(loss(s).item() for s in range(8))
    assert math.isfinite(after) and after < before


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_sampling_is_a_pure_function_of_the_noise(sampler):
    net = tiny_refiner()
    degraded, estimate = images(0)
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    a = refine(net, degraded, estimate, noise, steps=3, sampler=sampler)
    b = refine(net, degraded, estimate, noise.clone(), steps=3, sampler=sampler)
    c = refine(net, degraded, estimate, torch.randn(1, 3, 32, 32), steps=3, sampler=sampler)
    assert torch.isfinite(a).all() and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(refine(net, degraded, estimate, noise, steps=0), estimate)


def test_any_positive_step_count_runs():
    net = tiny_refiner()
    degraded, estimate = images(0)
    for steps in (1, 2, 5, 16):
        assert torch.isfinite(refine(net, degraded, estimate, torch.randn(1, 3, 32, 32), steps=steps)).all()


def test_guidance_pushes_away_from_the_text_free_prediction():
    net = tiny_refiner()
    degraded, estimate = images(0)
    noise = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    plain = refine(net, degraded, estimate, noise, steps=2, text=text())
    assert torch.equal(plain, refine(net, degraded, estimate, noise, steps=2, text=text(), guidance=1.0))
    guided = refine(net, degraded, estimate, noise, steps=2, text=text(), guidance=3.0)
    assert not torch.allclose(plain, guided)
    # without text there is nothing to guide
    assert torch.equal(
        refine(net, degraded, estimate, noise, steps=2), refine(net, degraded, estimate, noise, steps=2, guidance=3.0)
    )


@pytest.mark.parametrize("steps", [-1, 201])
def test_step_counts_out_of_range(steps):
    with pytest.raises(ConfigError, match="--steps"):
        check_steps(steps)


# -- pipeline -----------------------------------------------------------------------------------
def pipeline(refiner=None, **sampling) -> RestorePipeline:
    return RestorePipeline(
        tiny_predictor(), device="cpu", tile=0, refiner=refiner or tiny_refiner(), sampling=Sampling(**sampling)
    )


def test_steps_zero_is_the_predictor_alone():
    img = np.random.default_rng(0).random((40, 56, 3)).astype(np.float32)
    alone = RestorePipeline(tiny_predictor(), device="cpu", tile=0)(img)
    assert np.array_equal(pipeline(steps=0)(img), alone)
    refined = pipeline(steps=2)(img)
    assert refined.shape == img.shape and not np.array_equal(refined, alone)


def test_seed_decides_the_sample():
    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    pipe = pipeline(steps=2)
    assert np.array_equal(pipe(img, seed=4), pipe(img, seed=4))
    assert not np.array_equal(pipe(img, seed=4), pipe(img, seed=5))


def test_tiles_cut_one_noise_field_so_tiling_changes_little():
    img = np.random.default_rng(0).random((96, 112, 3)).astype(np.float32)
    pipe = pipeline(steps=2)
    whole = pipe(img, seed=1)
    tiled = pipe(img, seed=1, tile=64)
    other_seed = pipe(img, seed=2)
    tiling_error = np.abs(whole - tiled).mean()
    seed_spread = np.abs(whole - other_seed).mean()
    assert tiling_error < seed_spread / 3


def test_samples_give_a_mean_and_an_uncertainty_map():
    img = np.random.default_rng(0).random((32, 48, 3)).astype(np.float32)
    pipe = pipeline(steps=2, samples=3)
    out = pipe(img, seed=0)
    assert out.shape == img.shape and pipe.last.samples == 3
    std = pipe.last.uncertainty
    assert std.shape == (32, 48) and (std >= 0).all() and std.max() > 0
    single = pipeline(steps=2)(img, seed=0)
    assert not np.array_equal(out, single)


def test_uncertainty_image_has_a_scale():
    std = np.linspace(0, 0.1, 60 * 80, dtype=np.float32).reshape(60, 80)
    picture = uncertainty_image(std)
    assert picture.shape[0] == 60 and picture.shape[1] > 80 and picture.shape[2] == 3
    body = picture[:, :80]
    assert body[-1, -1].sum() > body[0, 0].sum()  # inferno: bright where the spread is large
    legend = picture[:, 80:]
    assert (legend == 1.0).all(axis=2).any() and (legend < 0.2).all(axis=2).any()  # white panel, dark text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(steps=-2), "--steps"),
        (dict(steps=1000), "at most"),
        (dict(steps=2, samples=0), "--samples"),
        (dict(steps=0, samples=2), "--steps > 0"),
        (dict(steps=2, sampler="heun"), "--sampler"),
        (dict(steps=2, guidance=-1), "--guidance"),
    ],
)
def test_sampling_options_are_checked(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Sampling(**kwargs)


def test_bundle_without_refiner_says_so(tiny_bundle):
    with pytest.raises(WeightsError, match="has no refiner"):
        RestorePipeline.from_bundle(str(tiny_bundle), device="cpu", sampling=Sampling(steps=4))


def test_fp16_overflow_in_the_refiner_is_redone_in_fp32():
    img = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    pipe = pipeline(steps=2)
    reference = pipe(img, seed=0)
    pipe.dtype = torch.bfloat16  # stand in for fp16 on a CPU
    pipe.predictor = pipe._place(pipe._fp32, torch.bfloat16)
    poisoned = pipe._place(pipe._refiner_fp32, torch.bfloat16)
    with torch.no_grad():
        poisoned.net.heads[-1][0].bias.fill_(float("nan"))
    pipe.refiner = poisoned
    with pytest.warns(RuntimeWarning, match="redone in fp32"):
        out = pipe(img, seed=0)
    assert pipe.last.fp32_fallback_tiles == 1 and np.allclose(out, reference, atol=1e-6)


# -- command line ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def refiner_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "with-refiner"
    save_bundle(
        path,
        {"predictor": tiny_predictor(384), "refiner": tiny_refiner(text_dim=384)},
        text_encoder={"name": "all-MiniLM-L6-v2", "dim": 384, "max_tokens": 77},
    )
    return path


def test_cli_samples_and_uncertainty(refiner_bundle, photo_png, tmp_path):
    out, unc = tmp_path / "out.png", tmp_path / "unc.png"
    code, output = run(
        "restore", photo_png, "-o", out, "--weights", refiner_bundle, "--steps", 2, "--samples", 2,
        "--uncertainty", unc, "--seed", 3, "--no-auto-prompt", "--sampler", "ddim",
    )  # fmt: skip
    assert code == 0, output
    assert PILImage.open(out).size == (64, 48)
    width, height = PILImage.open(unc).size
    assert height == 48 and width > 64


@pytest.mark.parametrize(
    "args, message",
    [
        (["--steps", "-1"], "--steps"),
        (["--steps", "100000"], "at most"),
        (["--steps", "2", "--samples", "0"], "--samples"),
        (["--steps", "2", "--uncertainty", "u.png"], "--samples 2 or more"),
        (["--steps", "2", "--sampler", "nope"], "--sampler"),
        (["--steps", "2", "--samples", "2", "--uncertainty", "u.png", "--plan", "auto"], "--plan none"),
    ],
)
def test_cli_sampling_errors(refiner_bundle, photo_png, tmp_path, args, message):
    code, output = run("restore", photo_png, "-o", tmp_path / "o.png", "--weights", refiner_bundle, *args)
    assert code != 0 and one_error_line(output) and message in output
    assert not (tmp_path / "o.png").exists()


def test_steps_refine_one_pass_unless_a_plan_is_asked_for(refiner_bundle, photo_png, tmp_path):
    import io
    import shutil

    from rich.console import Console

    from m3restore.caption.degradation import AnalyzerConfig, DegradationAnalyzer
    from m3restore.pipeline.batch import restore_paths
    from m3restore.weights import extend_bundle

    path = tmp_path / "with-analyzer"
    shutil.copytree(refiner_bundle, path)
    torch.manual_seed(0)
    extend_bundle(path, {"analyzer": DegradationAnalyzer(AnalyzerConfig(width=8, hidden=16))})
    sampling = Sampling(steps=2)
    for plan, planned in ((None, False), ("auto", True)):
        text = io.StringIO()
        report = restore_paths([photo_png], tmp_path / f"{plan}.png", weights=str(path), sampling=sampling,
                               plan=plan, device="cpu", console=Console(file=text))  # fmt: skip
        assert not report.failed
        assert bool(report.plans) == planned  # --steps alone: the refined one pass, no plan
        assert ("specialists' steps are not refined" in text.getvalue()) == planned


def test_cli_bundle_without_refiner(tiny_bundle, photo_png, tmp_path):
    code, output = run("restore", photo_png, "-o", tmp_path / "o.png", "--weights", tiny_bundle, "--steps", 4)
    assert code == 1 and one_error_line(output) and "has no refiner" in output


# -- training -------------------------------------------------------------------------------------
from test_training import MODEL, clean_dir, config  # noqa: E402,F401  (clean_dir is a fixture)

REFINER = {
    "network": dict(MODEL, time_embedding=True, global_residual=False, control_channels=6),
    "prediction_type": "v_prediction",
}


def test_refiner_stage_trains_against_a_frozen_predictor(clean_dir, tiny_bert_folder, tmp_path):  # noqa: F811
    from m3restore.training.loop import train

    quiet = lambda m: None  # noqa: E731
    predictor_run = train(config(clean_dir, tiny_bert_folder, iterations=2), tmp_path / "p", log=quiet)
    frozen = {k: v.clone() for k, v in open_bundle(predictor_run).load("predictor").state_dict().items()}
    cfg = config(
        clean_dir, tiny_bert_folder, stage="refiner", refiner=REFINER, predictor_bundle=str(predictor_run), val_steps=2
    )
    bundle = open_bundle(train(cfg, tmp_path / "r", log=quiet))
    assert set(bundle.components) == {"predictor", "refiner"}
    assert bundle.index["training"]["val_psnr"] is not None
    for k, v in bundle.load("predictor").state_dict().items():
        assert torch.equal(v, frozen[k]), k  # the predictor is exported untouched
    again = train(cfg, tmp_path / "again", init=str(bundle.path), log=quiet)
    assert open_bundle(again).load("refiner").config == bundle.load("refiner").config


def test_refiner_stage_needs_a_predictor_bundle(clean_dir, tiny_bert_folder, tmp_path):  # noqa: F811
    from m3restore.training.loop import train

    cfg = config(clean_dir, tiny_bert_folder, stage="refiner", refiner=REFINER, predictor_bundle=str(tmp_path / "no"))
    with pytest.raises(WeightsError):
        train(cfg, tmp_path / "r", log=lambda m: None)


def test_cli_refuses_to_add_a_refiner_to_another_predictor(refiner_bundle, tiny_bundle, tmp_path):
    code, output = run(
        "train", "--stage", "refiner", "--out", tmp_path / "r", "--predictor", tiny_bundle, "--add-to", refiner_bundle,
        "--dataset", "clean", "--root", tmp_path,
    )  # fmt: skip
    assert code == 2 and one_error_line(output) and "differs" in output
    code, output = run("train", "--out", tmp_path / "p", "--predictor", tiny_bundle)
    assert code == 2 and one_error_line(output) and "--stage refiner" in output

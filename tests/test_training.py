"""Training: a few iterations on tiny data, exact resume, warm start, export, and the errors."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from m3restore.config import from_dict
from m3restore.errors import ConfigError, DataError
from m3restore.io import Image, write_image
from m3restore.training.cli_config import build_config
from m3restore.training.config import TrainConfig
from m3restore.training.loop import TrainingError, fixes_from_config, lr_factor, train
from m3restore.weights import open_bundle

MODEL = dict(width=8, enc_blocks=[1, 1], dec_blocks=[1, 1], middle_blocks=1, text_dim=32, cond_dim=16)


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(0)
    for i in range(3):
        base = rng.random((6, 6, 3)).astype(np.float32)
        img = np.kron(base, np.ones((8, 8, 1), np.float32))  # 48x48 blocky photo
        write_image(folder / f"img{i}.png", Image(img))
    return folder


def config(clean_dir, text_dir, **overrides) -> TrainConfig:
    data = dict(
        recipe="cpu",
        model=MODEL,
        sources=[{"kind": "clean", "root": str(clean_dir), "degrade": "noise:10-30,motion-blur@0.5"}],
        val_sources=[{"kind": "clean", "root": str(clean_dir), "degrade": "noise:20"}],
        crop=32,
        val_crop=32,
        batch_size=2,
        iterations=6,
        samples_per_epoch=8,
        val_every=3,
        val_images=2,
        log_every=1,
        warmup=0,
        ema_decay=0.9,
        text_encoder=str(text_dir),
        checkpoint_minutes=60,
    )
    data.update(overrides)
    return from_dict(TrainConfig, data)


def weights_of(bundle):
    net = open_bundle(bundle).load("predictor")
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_train_exports_a_verified_bundle(clean_dir, tiny_bert_folder, tmp_path):
    bundle = train(config(clean_dir, tiny_bert_folder), tmp_path / "run", log=lambda m: None)
    opened = open_bundle(bundle)
    assert opened.index["training"]["iterations"] == 6
    assert opened.index["text_encoder"]["dim"] == 32
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) for r in rows)
    assert rows[2]["val_psnr"] is not None and rows[5]["val_psnr"] is not None
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("step,loss")
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000


def test_resume_is_exact(clean_dir, tiny_bert_folder, tmp_path):
    cfg = config(clean_dir, tiny_bert_folder)
    straight = weights_of(train(cfg, tmp_path / "straight", log=lambda m: None))

    def interrupt_at_step_3(message):
        if message.startswith("step 3/"):
            os.kill(os.getpid(), signal.SIGINT)

    first = train(cfg, tmp_path / "split", log=interrupt_at_step_3)
    assert open_bundle(first).index["training"]["iterations"] == 3
    resumed = weights_of(train(None, tmp_path / "split", resume=True, log=lambda m: None))
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name


def test_loader_workers_change_nothing(clean_dir, tiny_bert_folder, tmp_path):
    """Persistent workers across an epoch boundary (4 batches an epoch, 6 steps) load the same batches."""
    inline = weights_of(train(config(clean_dir, tiny_bert_folder), tmp_path / "inline", log=lambda m: None))
    workers = config(clean_dir, tiny_bert_folder, num_workers=2)
    pooled = weights_of(train(workers, tmp_path / "pooled", log=lambda m: None))
    for name, value in inline.items():
        assert torch.equal(value, pooled[name]), name


def test_resume_after_a_crash_logs_each_step_once(clean_dir, tiny_bert_folder, tmp_path):
    """A run killed between checkpoints logged steps it redoes when resumed; the log keeps one row each."""

    def interrupt_at_step_3(message):
        if message.startswith("step 3/"):
            os.kill(os.getpid(), signal.SIGINT)

    run = tmp_path / "run"
    train(config(clean_dir, tiny_bert_folder), run, log=interrupt_at_step_3)
    # what a run killed (SIGKILL, power cut) at step 5 leaves: rows past its step-3 checkpoint
    with open(run / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps({"step": s, "loss": 9.0, "val_psnr": None}) + "\n" for s in (4, 5))
    with open(run / "metrics.csv", "a") as f:
        f.writelines(f"{s},9.0,0.001,1.0,0.1,1.0,\n" for s in (4, 5))
    train(None, run, resume=True, log=lambda m: None)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(r["loss"] != 9.0 for r in rows)
    table = (run / "metrics.csv").read_text().splitlines()
    assert table[0].startswith("step,loss") and [line.split(",")[0] for line in table[1:]] == list("123456")


@pytest.mark.parametrize("broken", ["loss", "gradient norm"])
def test_a_diverging_run_stops_before_the_weights_spoil(clean_dir, tiny_bert_folder, tmp_path, monkeypatch, broken):
    from m3restore.training import stages

    real = stages.multiscale_loss
    calls = []

    def breaks_at_the_fourth_step(outputs, target, *args, **kwargs):
        loss = real(outputs, target, *args, **kwargs)
        calls.append(1)
        if len(calls) < 4:
            return loss
        if broken == "loss":
            return loss * float("nan")
        # a finite loss whose gradient is not a number: d/dx sqrt(|x|) at 0
        return loss + (outputs[0] - outputs[0].detach()).abs().sum().sqrt()

    monkeypatch.setattr(stages, "multiscale_loss", breaks_at_the_fourth_step)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=f"the {broken} is not finite at step 4, so the run stopped .*lower --lr"):
        train(config(clean_dir, tiny_bert_folder, grad_clip=0.5), run, log=lambda m: None)
    assert not (run / "bundle").exists()


def test_warm_start_starts_from_the_bundle(clean_dir, tiny_bert_folder, tmp_path):
    cfg = config(clean_dir, tiny_bert_folder, iterations=1, lr=1e-12, ema_decay=0.0)
    base = train(cfg, tmp_path / "base", log=lambda m: None)
    again = train(cfg, tmp_path / "again", init=str(base), log=lambda m: None)
    a, b = weights_of(base), weights_of(again)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_grow_adds_blocks_that_start_as_the_identity(clean_dir, tiny_bert_folder, tmp_path):
    cfg = config(clean_dir, tiny_bert_folder, iterations=2)
    base = train(cfg, tmp_path / "base", log=lambda m: None)
    # lr 1e-12: the grown run's weights are its start, which must compute the bundle's function
    grown = config(clean_dir, tiny_bert_folder, iterations=1, lr=1e-12, ema_decay=0.0, grow={"dec_blocks": [3, 1]})
    lines = []
    run = train(grown, tmp_path / "grown", init=str(base), log=lines.append)
    assert "grew the network by 2 blocks (dec_blocks [1, 1] -> [3, 1]); same output as the bundle's" in lines
    old, new = open_bundle(base).load("predictor"), open_bundle(run).load("predictor")
    assert new.config.dec_blocks == (3, 1) and len(new.decoders[-1]) == 3
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert (new(x) - old(x)).abs().max() < 1e-5
    # a further leg from the grown bundle, with the same config, keeps its network as it is
    lines.clear()
    train(grown, tmp_path / "next", init=str(run), log=lines.append)
    assert "grow: the bundle's network already has these blocks (dec_blocks)" in lines
    # resuming builds the grown network from the checkpoint's config (no --init), and its weights load into it
    more = train(None, tmp_path / "grown", resume=True, log=lambda m: None)
    assert open_bundle(more).load("predictor").config.dec_blocks == (3, 1)


def test_grow_errors(clean_dir, tiny_bert_folder, tmp_path):
    # lr 1e-2: blocks far enough from the identity for their dilations to matter
    base = train(config(clean_dir, tiny_bert_folder, iterations=3, lr=1e-2), tmp_path / "base", log=lambda m: None)

    def grown(changes):
        cfg = config(clean_dir, tiny_bert_folder, iterations=1, grow=changes)
        return train(cfg, tmp_path / "grown", init=str(base), log=lambda m: None)

    with pytest.raises(ConfigError, match=r"unknown key 'width'; valid: enc_blocks, middle_blocks, dec_blocks"):
        config(clean_dir, tiny_bert_folder, grow={"width": 16})
    with pytest.raises(ConfigError, match="give it with --init"):
        train(config(clean_dir, tiny_bert_folder, grow={"middle_blocks": 4}), tmp_path / "x", log=lambda m: None)
    with pytest.raises(ConfigError, match=r"dec_blocks \[0, 1\] is not the bundle's \[1, 1\] or more"):
        grown({"dec_blocks": [0, 1]})
    # one middle block more shifts the dilations of the decoder's blocks: refused, not trained
    with pytest.raises(ConfigError, match="does not compute the bundle's function.*add 3 blocks at a time"):
        grown({"middle_blocks": 2})
    grown({"middle_blocks": 4})  # a whole cycle of dilations (3, 4, 5) keeps every later block's


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        train(None, tmp_path, resume=True)


def test_text_dim_must_match_the_encoder(clean_dir, tiny_bert_folder, tmp_path):
    cfg = config(clean_dir, tiny_bert_folder, model={**MODEL, "text_dim": 48})
    with pytest.raises(ConfigError, match="32-d"):
        train(cfg, tmp_path / "run", log=lambda m: None)


def test_folder_without_images(tiny_bert_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    cfg = config(tmp_path / "empty", tiny_bert_folder)
    with pytest.raises(DataError):
        train(cfg, tmp_path / "run", log=lambda m: None)


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe 'fast'; valid: paper, cpu, gpu$"):
        build_config(recipe="fast")
    # a typo is answered with the nearest valid name, before the whole list
    with pytest.raises(ConfigError, match=r"unknown recipe 'cpus' \(did you mean 'cpu'\?\); valid: paper"):
        build_config(recipe="cpus")
    with pytest.raises(ConfigError, match=r"'motion-blurr' \(did you mean 'motion-blur'\?\); valid"):
        build_config(dataset="clean", root="x", degrade="motion-blurr")
    with pytest.raises(ConfigError, match="unknown --dataset 'imagenet'; valid: "):
        build_config(dataset="imagenet")
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipe: cpu\nlearning_rate: 1\n")
    with pytest.raises(ConfigError, match="learning_rate"):
        build_config(config=bad)
    bad.write_text("recipe: cpu\ncrp: 128\n")
    with pytest.raises(ConfigError, match=r"unknown key 'crp' \(did you mean 'crop'\?\)"):
        build_config(config=bad)
    bad.write_text("recipe: cpu\nloss: l2\n")
    with pytest.raises(ConfigError, match="unknown loss 'l2'.*; valid: l1, psnr"):
        build_config(config=bad)
    bad.write_text("recipe: cpu\nfft_weight: -0.1\n")
    with pytest.raises(ConfigError, match="fft_weight must be 0 or more, got -0.1"):
        build_config(config=bad)
    bad.write_text("recipe: cpu\nfft_weight: 0.1\n")
    assert build_config(config=bad).fft_weight == 0.1
    good = tmp_path / "good.yaml"
    good.write_text("recipe: cpu\nloss: psnr\n")
    assert build_config(config=good).loss == "psnr"


def test_predictor_stage_trains_on_the_configured_loss():
    from m3restore.models.m3unet import M3UNet, M3UNetConfig
    from m3restore.training.stages import PredictorStage

    torch.manual_seed(0)
    net = M3UNet(M3UNetConfig(width=8, enc_blocks=(1,), dec_blocks=(1,), middle_blocks=1, text_dim=16, cond_dim=16))
    inp, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    losses = {}
    for kind in ("l1", "psnr"):
        stage = PredictorStage(TrainConfig(loss=kind), "cpu")
        losses[kind] = stage.loss(net, inp, target, None).item()
    assert losses["l1"] > 0 > losses["psnr"]  # a PSNR loss is minus a PSNR in dB


def test_analyzer_prompts_word_each_pair_as_the_command_would(clean_dir, monkeypatch):
    import m3restore.caption.degradation as degradation
    from m3restore.data.datasets import Pair, _load_rgb
    from m3restore.training.config import SourceConfig
    from m3restore.training.loop import analyzer_prompts
    from m3restore.training.prompts import canonical, possible_prompts

    strengths = {"img0.png": 0.1, "img1.png": 0.5, "img2.png": 0.9}
    seen = []

    def fake_analyze(model, image):  # each frame (told apart by its pixels) has its own strength
        name = next(n for n in strengths if np.allclose(image, read[n]))
        seen.append(name)
        found = degradation.Finding("motion-blur", 0.99, strengths[name], True)
        return degradation.Analysis([found, degradation.Finding("noise", 0.9, 0.9, True)])

    read = {p.name: _load_rgb(p) for p in sorted(clean_dir.glob("*.png"))}
    monkeypatch.setattr(degradation, "analyze", fake_analyze)
    pairs = [Pair(clean_dir / n, clean_dir / n, n) for n in strengths]
    source = SourceConfig(kind="pairs", prompt="motion blur", analyzer_prompts=0.5)
    words = analyzer_prompts(source, pairs, analyzer=object())
    # only the damage the source names, at the analyzer's severity: the noise it also read is left out
    assert words == {
        "img0.png": "mild motion blur",
        "img1.png": "moderate motion blur",
        "img2.png": "strong motion blur",
    }
    assert sorted(seen) == sorted(strengths)  # each whole frame read once
    cfg = TrainConfig(sources=[source])
    assert set(words.values()) <= set(possible_prompts(cfg))  # a precomputed text table holds them
    # two kinds of damage named: each at its own severity, a combination the table must also hold
    both = SourceConfig(kind="pairs", prompt="motion blur, noise", analyzer_prompts=0.5)
    words = analyzer_prompts(both, pairs, analyzer=object())
    assert words["img0.png"] == "mild motion blur, strong noise"
    assert set(map(canonical, words.values())) <= set(possible_prompts(TrainConfig(sources=[both])))
    with pytest.raises(ConfigError, match="names no damage"):
        analyzer_prompts(SourceConfig(kind="pairs", prompt="street sign", analyzer_prompts=0.5), pairs, object())
    with pytest.raises(ValueError, match="analyzer_prompts is for paired sources"):
        SourceConfig(kind="clean", analyzer_prompts=0.5)
    with pytest.raises(ValueError, match="analyzer_prompts must be between 0 and 1"):
        SourceConfig(kind="pairs", analyzer_prompts=2)


def test_resume_keeps_the_analyzer_words_the_run_began_with(clean_dir, tiny_bert_folder, tmp_path, monkeypatch):
    import m3restore.training.loop as loop

    def reads(severity):
        def fake(source, pairs, analyzer=None):
            return {p.name: f"{severity} motion blur" for p in pairs}

        return fake

    source = {"kind": "pairs", "input": str(clean_dir), "target": str(clean_dir), "prompt": "motion blur"}
    cfg = config(clean_dir, tiny_bert_folder, sources=[dict(source, analyzer_prompts=1.0)])
    monkeypatch.setattr(loop, "analyzer_prompts", reads("mild"))
    straight = weights_of(train(cfg, tmp_path / "straight", log=lambda m: None))
    recorded = json.loads((tmp_path / "straight" / "analyzer_prompts.json").read_text())
    assert recorded == {"0": {f"img{i}": "mild motion blur" for i in range(3)}}

    def interrupt_at_step_3(message):
        if message.startswith("step 3/"):
            os.kill(os.getpid(), signal.SIGINT)

    train(cfg, tmp_path / "split", log=interrupt_at_step_3)
    monkeypatch.setattr(loop, "analyzer_prompts", reads("strong"))  # the installed analyzer changed
    resumed = weights_of(train(None, tmp_path / "split", resume=True, log=lambda m: None))
    for name, value in straight.items():
        assert torch.equal(value, resumed[name]), name
    reworded = weights_of(train(cfg, tmp_path / "reworded", log=lambda m: None))
    assert any(not torch.equal(value, reworded[name]) for name, value in straight.items())
    (tmp_path / "split" / "analyzer_prompts.json").write_text('{"0": {"img0": ')  # cut short
    with pytest.raises(TrainingError, match="analyzer_prompts.json: unreadable"):
        train(None, tmp_path / "split", resume=True, log=lambda m: None)


def test_paper_recipe_matches_the_paper():
    cfg = build_config(recipe="paper", dataset="gopro", root="GOPRO_Large")
    assert (cfg.crop, cfg.batch_size, cfg.lr, cfg.iterations, cfg.betas) == (256, 10, 1e-4, 3000, (0.9, 0.999))
    assert [round(lr_factor(cfg, s), 4) for s in (0, 999, 1000, 2500)] == [1.0, 1.0, 0.5, 0.25]


def test_time_limited_cosine_ends_low():
    cfg = from_dict(TrainConfig, dict(lr_schedule="cosine", iterations=10**6, time_limit_minutes=1.0, warmup=0))
    assert lr_factor(cfg, 10, elapsed_s=0) > 0.99
    assert lr_factor(cfg, 10, elapsed_s=60) == pytest.approx(cfg.lr_min / cfg.lr)


def test_text_source_trains_and_its_prompts_are_in_the_table(clean_dir, tiny_bert_folder, tmp_path):
    from m3restore.training.loop import build_train_dataset
    from m3restore.training.prompts import possible_prompts

    cfg = config(clean_dir, tiny_bert_folder, sources=[{"kind": "text", "degrade": "motion-blur,noise:10"}])
    item = build_train_dataset(cfg)[0]
    assert item["input"].shape == (3, 32, 32)
    assert "street sign, strong motion blur" in possible_prompts(
        cfg
    ) or "mild motion blur, street sign" in possible_prompts(cfg)
    assert fixes_from_config(cfg) == ["deblur", "denoise"]
    with pytest.raises(ConfigError, match="for training"):
        train(config(clean_dir, tiny_bert_folder, val_sources=[{"kind": "text"}]), tmp_path / "r", log=lambda m: None)


def test_fixes_given_in_the_config_are_checked_and_ordered(clean_dir, tiny_bert_folder, tmp_path):
    assert fixes_from_config(config(clean_dir, tiny_bert_folder, fixes=["denoise", "deblur"])) == ["deblur", "denoise"]
    with pytest.raises(ConfigError, match="unknown step 'sharpen'; valid: "):
        train(config(clean_dir, tiny_bert_folder, fixes=["sharpen"]), tmp_path / "r", log=lambda m: None)
    assert not (tmp_path / "r" / "metrics.jsonl").exists()  # refused before the first step


def test_training_from_a_text_table_needs_no_text_cleaning_packages(clean_dir, tiny_bert_folder, tmp_path):
    """The lent GPU machines have neither gensim nor pyspellchecker (benchmarks/gpu/run.sh)."""
    import subprocess
    import sys

    from m3restore.config import to_dict
    from m3restore.text.encoder import CachedTextEncoder
    from m3restore.training.prompts import build_text_cache

    pairs = [{"kind": "pairs", "input": str(clean_dir), "target": str(clean_dir), "prompt": "motion blur"}]
    cfg = config(clean_dir, tiny_bert_folder, iterations=2, sources=pairs, fixes=["deblur"])
    assert build_text_cache(cfg, tmp_path / "table.safetensors") >= 2
    assert "motion blur" in CachedTextEncoder.load(tmp_path / "table.safetensors")
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(dict(to_dict(cfg), text_cache=str(tmp_path / "table.safetensors"))))
    script = (
        "import sys, json\n"
        "for name in ('gensim', 'spellchecker'):\n"
        "    sys.modules[name] = None\n"
        "from m3restore.config import from_dict\n"
        "from m3restore.training.config import TrainConfig\n"
        "from m3restore.training.loop import train\n"
        f"cfg = from_dict(TrainConfig, json.load(open({str(cfg_path)!r})))\n"
        f"print(train(cfg, {str(tmp_path / 'run')!r}, log=lambda m: None))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert open_bundle(tmp_path / "run" / "bundle").index["fixes"] == ["deblur"]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_declare_the_steps_their_sources_train(path):
    cfg = build_config(config=path)
    derived = fixes_from_config(dataclasses.replace(cfg, fixes=[]))
    assert derived
    assert fixes_from_config(cfg) == derived

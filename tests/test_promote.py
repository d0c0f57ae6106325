"""`m3restore promote`: shipping a trained leg into a bundle, keeping the earlier legs on record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from cli_helpers import one_error_line, run
from safetensors.torch import load_file
from test_refiner import tiny_refiner
from test_weights import tiny_net

from m3restore.caption.degradation import AnalyzerConfig, DegradationAnalyzer
from m3restore.errors import WeightsError
from m3restore.weights import average_bundles, convert_bundle, open_bundle, promote_bundle, save_bundle, sha256

ENCODER = {"name": "fake-encoder", "dim": 16}


def shipped(path: Path, **extra) -> Path:
    """A float16 'shipped' specialist after one leg, with an analyzer that promotion must not touch."""
    analyzer = DegradationAnalyzer(AnalyzerConfig(width=8, hidden=16)).eval()
    fields = dict(text_encoder=ENCODER, fixes=["denoise"], training={"iterations": 100, "val_psnr": 30.0})
    fields.update(extra)
    save_bundle(path, {"predictor": tiny_net(seed=1), "analyzer": analyzer}, storage="float16", **fields)
    (path / "MODEL_CARD.md").write_text("# card\n")
    return path


def run_bundle(path: Path, seed: int, iterations: int, **extra) -> Path:
    """What `m3restore train` writes: a float32 predictor and the run's training record."""
    fields = dict(text_encoder=ENCODER, fixes=["denoise"], training={"iterations": iterations, "val_psnr": 31.0})
    fields.update(extra)
    return save_bundle(path, {"predictor": tiny_net(seed=seed)}, **fields)


def snapshot(bundle: Path) -> dict[str, str]:
    return {str(f.relative_to(bundle)): sha256(f) for f in sorted(bundle.rglob("*")) if f.is_file()}


def test_promotion_ships_the_benchmarked_float16_tensors_and_records_every_leg(tmp_path: Path):
    target = shipped(tmp_path / "weights" / "m3restore-denoise")
    analyzer_before = open_bundle(target).index["components"]["analyzer"]
    leg2 = run_bundle(tmp_path / "runs" / "leg2", seed=2, iterations=200)

    index = promote_bundle(leg2, target)

    converted = convert_bundle(leg2, tmp_path / "leg2-fp16")  # what was benchmarked before promotion
    shipped_tensors = load_file(str(target / "predictor" / "model.safetensors"))
    benchmarked = load_file(str(converted / "predictor" / "model.safetensors"))
    assert shipped_tensors.keys() == benchmarked.keys()
    for key, tensor in benchmarked.items():
        assert tensor.dtype == torch.float16 and torch.equal(shipped_tensors[key], tensor), key
    assert index["components"]["predictor"]["storage"] == "float16"
    assert index["components"]["analyzer"] == analyzer_before  # untouched
    assert index["training"] == {"iterations": 200, "val_psnr": 31.0}
    assert index["earlier_legs"] == [{"iterations": 100, "val_psnr": 30.0}]
    assert index["fixes"] == ["denoise"] and index["text_encoder"] == ENCODER
    assert (target / "MODEL_CARD.md").read_text() == "# card\n"
    loaded = open_bundle(target).load("predictor")  # verifies every checksum
    for (key, want), got in zip(tiny_net(seed=2).state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(want.half().float(), got), key

    leg3 = run_bundle(tmp_path / "runs" / "leg3", seed=3, iterations=300)
    index = promote_bundle(leg3, target, storage="float32")
    assert [leg["iterations"] for leg in index["earlier_legs"]] == [100, 200]
    assert index["training"]["iterations"] == 300
    assert index["components"]["predictor"]["storage"] == "float32"
    assert not list(target.glob(".*"))  # no staging folders left behind


@pytest.mark.parametrize(
    "make_source, make_target, message",
    [
        (lambda p: run_bundle(p, 2, 200, text_encoder={"name": "other", "dim": 16}), shipped, "text_encoder"),
        (lambda p: run_bundle(p, 2, 200, fixes=["deblur"]), shipped, "fixes"),
        (lambda p: save_bundle(p, {"predictor": tiny_net(seed=2)}, text_encoder=ENCODER), shipped, "no training"),
        (lambda p: save_bundle(p, {"refiner": tiny_refiner()}, training={}), shipped, "has no 'refiner' component"),
        (
            lambda p: run_bundle(p, 2, 200),
            lambda p: save_bundle(
                p,
                {"predictor": tiny_net(seed=1), "refiner": tiny_refiner()},
                text_encoder=ENCODER,
                fixes=["denoise"],
                training={},
            ),
            "refiner was trained against the predictor",
        ),
    ],
    ids=["text-encoder", "fixes", "no-training-record", "adds-a-component", "stale-refiner"],
)
def test_refusals_leave_the_target_as_it_was(tmp_path: Path, make_source, make_target, message):
    target = make_target(tmp_path / "target")
    source = make_source(tmp_path / "run")
    before = snapshot(target)
    with pytest.raises(WeightsError, match=message) as excinfo:
        promote_bundle(source, target)
    assert "\n" not in str(excinfo.value)
    assert snapshot(target) == before


def test_promoting_into_itself_is_refused(tmp_path: Path):
    target = shipped(tmp_path / "b")
    with pytest.raises(WeightsError, match="into itself"):
        promote_bundle(target, target)


def test_cli_promote_and_its_errors(tmp_path: Path):
    target = shipped(tmp_path / "m3restore-denoise")
    leg2 = run_bundle(tmp_path / "run", seed=2, iterations=200)
    code, output = run("promote", leg2, target)
    assert code == 0, output
    output = " ".join(output.split())
    assert "(shipped leg 2 on its record): 200 iterations" in output and "MODEL_CARD.md is unchanged" in output
    assert json.loads((target / "model_index.json").read_text())["training"]["iterations"] == 200
    code, output = run("info", "--weights", target)
    assert code == 0 and "training history: 2 legs, 300 iterations" in " ".join(output.split())

    code, output = run("promote", tmp_path / "nowhere", target)
    assert code == 1 and one_error_line(output) and "no such weights folder" in output
    other = run_bundle(tmp_path / "run2", seed=3, iterations=300, fixes=["deblur"])
    code, output = run("promote", other, target)
    assert code == 1 and one_error_line(output) and "fixes" in output
    code, output = run("promote", leg2, target, "--storage", "int8")
    assert code == 1 and one_error_line(output) and "unknown storage dtype" in output


def test_average_of_two_runs_is_the_mean_of_their_tensors_and_keeps_both_records(tmp_path: Path):
    a = run_bundle(tmp_path / "a", seed=2, iterations=200)
    b = run_bundle(tmp_path / "b", seed=3, iterations=300)
    mean = average_bundles([a, b], tmp_path / "mean")

    ta, tb = (load_file(str(p / "predictor" / "model.safetensors")) for p in (a, b))
    tm = load_file(str(mean / "predictor" / "model.safetensors"))
    assert tm.keys() == ta.keys()
    for key, tensor in tm.items():
        assert torch.allclose(tensor, (ta[key].double() + tb[key].double()).div(2).float()), key
    assert any(not torch.equal(ta[k], tb[k]) for k in ta)  # the runs did differ
    index = open_bundle(mean).index
    assert index["training"]["iterations"] == 500 and index["training"]["val_psnr"] is None
    assert [r["iterations"] for r in index["training"]["average_of"]] == [200, 300]
    assert index["fixes"] == ["denoise"] and index["text_encoder"] == ENCODER

    target = shipped(tmp_path / "m3restore-denoise")  # ships like any run's bundle
    promoted = promote_bundle(mean, target)
    assert promoted["training"]["average_of"][1]["bundle"] == str(b)


def test_average_refuses_what_is_not_one_model(tmp_path: Path):
    a = run_bundle(tmp_path / "a", seed=2, iterations=200)
    with pytest.raises(WeightsError, match="two or more"):
        average_bundles([a], tmp_path / "x")
    wider = save_bundle(
        tmp_path / "w",
        {"predictor": tiny_net(width=16)},
        text_encoder=ENCODER,
        fixes=["denoise"],
        training={"iterations": 1},
    )
    with pytest.raises(WeightsError, match="config differs"):
        average_bundles([a, wider], tmp_path / "x")
    other = run_bundle(tmp_path / "o", seed=3, iterations=300, fixes=["deblur"])
    with pytest.raises(WeightsError, match="fixes"):
        average_bundles([a, other], tmp_path / "x")
    with pytest.raises(WeightsError, match="already exists"):
        average_bundles([a, a], a)
    assert not (tmp_path / "x").exists()


def test_cli_average(tmp_path: Path):
    a = run_bundle(tmp_path / "a", seed=2, iterations=200)
    b = run_bundle(tmp_path / "b", seed=3, iterations=300)
    code, output = run("average", a, b, "--out", tmp_path / "mean")
    assert code == 0 and "mean of 2 bundles" in output, output
    code, output = run("info", "--weights", tmp_path / "mean")
    assert code == 0 and "the mean of 2 runs" in " ".join(output.split()) and "validation PSNR" not in output
    code, output = run("average", a, "--out", tmp_path / "m2")
    assert code == 1 and one_error_line(output) and "two or more" in output

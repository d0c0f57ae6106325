"""The command line, as a user runs it: every failure is one line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import one_error_line, run

from m3restore.io import Image, read_image, write_image


def test_help_lists_commands():
    code, out = run("--help")
    assert code == 0
    for command in ("caption", "restore", "train", "eval", "info"):
        assert command in out


def test_help_does_not_import_torch():
    code = "import sys; from m3restore.cli import app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_restore_single_file(tiny_bundle, photo_file, tmp_path):
    target = tmp_path / "out.png"
    code, out = run("restore", photo_file, "-o", target, "--weights", tiny_bundle, "--seed", 1)
    assert code == 0, out
    restored = read_image(target)
    assert restored.pixels.shape == read_image(photo_file).pixels.shape


def test_restore_with_self_ensemble(tiny_bundle, photo_file, tmp_path):
    plain, eight = tmp_path / "plain.png", tmp_path / "eight.png"
    code, out = run("restore", photo_file, "-o", plain, "--weights", tiny_bundle, "--plan", "none")
    assert code == 0, out
    code, out = run(
        "restore", photo_file, "-o", eight, "--weights", tiny_bundle, "--plan", "none", "--ensemble", 8, "-v"
    )
    assert code == 0, out
    assert "self-ensemble of 8 views" in out
    a, b = read_image(plain).pixels, read_image(eight).pixels
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_restore_keeps_alpha_and_16_bit(tiny_bundle, tmp_path, photo):
    alpha = (np.arange(40 * 56, dtype=np.uint16).reshape(40, 56) * 29) % 65535
    src = tmp_path / "deep.png"
    write_image(src, Image(photo, alpha.astype(np.uint16), 16))
    code, out = run("restore", src, "-o", tmp_path / "deep_out.png", "--weights", tiny_bundle)
    assert code == 0, out
    result = read_image(tmp_path / "deep_out.png")
    assert result.bit_depth == 16
    assert np.array_equal(result.alpha, alpha)


def test_ext_picks_the_output_format_of_a_folder_run(tiny_bundle, photo, tmp_path):
    folder = tmp_path / "jpegs"
    write_image(folder / "a.jpg", Image(photo, None, 8))
    code, out = run("restore", folder, "-o", tmp_path / "out", "--weights", tiny_bundle, "--ext", "PNG")
    assert code == 0, out
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_restored.png"]
    assert read_image(tmp_path / "out" / "a_restored.png").pixels.shape == photo.shape
    code, out = run("restore", folder, "-o", tmp_path / "out2", "--weights", tiny_bundle, "--ext", "gif")
    assert code == 2 and one_error_line(out)
    assert "--ext gif: not a format m3restore writes" in out
    assert not (tmp_path / "out2").exists()


def test_folder_run_continues_past_bad_files(tiny_bundle, photo_file, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    os.link(photo_file, folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    data = photo_file.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "phone.HEIC").write_bytes(b"not read, whatever it holds")  # named, not passed over
    (folder / "notes.txt").write_text("not a picture")  # passed over
    code, out = run("restore", folder, "-o", tmp_path / "out", "--weights", tiny_bundle)
    assert code == 1
    assert (tmp_path / "out" / "good_restored.png").is_file()
    for name in ("empty.png", "text.png", "truncated.png"):
        assert name in out
        assert not (tmp_path / "out" / name.replace(".png", "_restored.png")).exists()
    assert "phone.HEIC: HEIC is not read by m3restore; convert it to one of .png" in out
    assert "notes.txt" not in out
    assert "1 restored, 4 failed" in out
    assert "Traceback" not in out
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_existing_output_needs_overwrite(tiny_bundle, photo_file, tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    code, out = run("restore", photo_file, "-o", target, "--weights", tiny_bundle)
    assert code == 1 and one_error_line(out) and "--overwrite" in out
    assert target.read_bytes() == b"keep me"
    code, out = run("restore", photo_file, "-o", target, "--weights", tiny_bundle, "--overwrite")
    assert code == 0, out
    assert read_image(target).pixels.shape[:2] == (40, 56)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["restore", "{missing}"], "no such file"),
        (["restore", "{emptydir}"], "no images"),
        (["restore", "{photo}", "--device", "tpu"], "unknown --device 'tpu'"),
        (["restore", "{photo}", "--dtype", "fp8"], "unknown --dtype 'fp8'"),
        (["restore", "{photo}", "--dtype", "fp61"], "did you mean 'fp16'?"),
        (["restore", "{photo}", "--tile", "-3"], "--tile"),
        (["restore", "{photo}", "--tile", "big"], "--tile"),
        (["restore", "{photo}", "--ensemble", "3"], "--ensemble 3"),
        (["restore", "{photo}", "--max-pixels", "100"], "limit"),
        (["restore", "{photo}", "--weights", "{missing}"], "no such weights"),
        (["restore", "{photo}", "--weights", "{emptydir}"], "not a weights bundle"),
        (["restore", "{photo}", "-o", "{photo}"], "refusing to overwrite the input"),
        (["info", "--weights", "{missing}"], "no such weights"),
    ],
)
def test_errors_are_one_line(args, needle, tiny_bundle, photo_file, tmp_path):
    emptydir = tmp_path / "emptydir"
    emptydir.mkdir()
    fill = {"missing": tmp_path / "nope" / "x.png", "emptydir": emptydir, "photo": photo_file}
    argv = [a.format(**fill) for a in args]
    if "--weights" not in argv and argv[0] == "restore":
        argv += ["--weights", str(tiny_bundle)]
    argv += ["-o", str(tmp_path / "o.png")] if "-o" not in argv and argv[0] == "restore" else []
    code, out = run(*argv)
    assert code != 0
    assert one_error_line(out), out
    assert needle in out
    assert not (tmp_path / "o.png").exists()


def test_cuda_on_a_cpu_machine(tiny_bundle, photo_file, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, out = run("restore", photo_file, "-o", tmp_path / "o.png", "--weights", tiny_bundle, "--device", "cuda")
    assert code == 1 and one_error_line(out) and "CUDA is not available" in out


def test_unwritable_output_folder(tiny_bundle, photo_file, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, out = run("restore", photo_file, photo_file.parent, "-o", blocker / "sub", "--weights", tiny_bundle)
    assert code == 1 and one_error_line(out) and "cannot be written" in out


def test_output_ending_in_a_slash_is_a_folder_for_one_input(tiny_bundle, photo_file, tmp_path):
    code, out = run("restore", photo_file, "-o", f"{tmp_path / 'new'}/", "--weights", tiny_bundle)
    assert code == 0, out
    assert [p.name for p in (tmp_path / "new").iterdir()] == [f"{photo_file.stem}_restored.png"]


def test_output_without_a_format_fails_before_any_work(photo_file, tmp_path):
    # The weights do not exist: the output's missing extension must be reported first.
    code, out = run("restore", photo_file, "-o", tmp_path / "noext", "--weights", tmp_path / "nowhere")
    assert code == 1 and one_error_line(out)
    assert "unknown output format (no extension)" in out and "nowhere" not in out
    assert out.rstrip().endswith(f"or {tmp_path / 'noext'}/ for a folder")
    assert not (tmp_path / "noext").exists()


def test_corrupt_weights(tiny_bundle, photo_file, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    tensors = broken / "predictor" / "model.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:1000])
    code, out = run("restore", photo_file, "-o", tmp_path / "o.png", "--weights", broken)
    assert code == 1 and one_error_line(out) and "checksum mismatch" in out
    assert not (tmp_path / "o.png").exists()


def test_info_shows_components(tiny_bundle):
    code, out = run("info", "--weights", tiny_bundle)
    assert code == 0, out
    assert "predictor" in out and "M3UNet" in out and "all-MiniLM-L6-v2" in out


def test_subprocess_exit_code_and_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "m3restore", "restore", str(tmp_path / "missing.png")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["restore", "a.png", "--seed", "abc"], "Invalid value for '--seed'"),
        (["restore", "a.png", "--no-such-option"], "No such option: --no-such-option"),
        (["restore"], "Missing argument"),
        (["no-such-command"], "No such command 'no-such-command'"),
    ],
)
def test_usage_errors_of_the_console_script_are_one_line(args, needle, monkeypatch, capsys):
    from m3restore.cli import main

    monkeypatch.setattr(sys, "argv", ["m3restore", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and one_error_line(err) and needle in err and "--help)" in err, err


def test_console_script_exit_codes(monkeypatch, capsys):
    from m3restore.cli import main

    for args, code in ((["--help"], 0), ([], 2)):  # bare `m3restore` shows the help, as click does
        monkeypatch.setattr(sys, "argv", ["m3restore", *args])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == code and "Usage" in capsys.readouterr().out

"""`xaifast explain IMAGES... --method NAME --out DIR`: batched, resumable, atomic; torchrun sharding."""

import os
import re
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from xaifast.cli import main

# A seeded model factory the command line imports as `cli_models:tiny` (from the working folder).
MODELS = textwrap.dedent("""
    import torch
    from torch import nn

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5),
        )

    model = tiny()
""")

SIZE = ["--size", "32"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A folder with `cli_models.py`, made the working folder (so `cli_models:tiny` imports)."""
    (tmp_path / "cli_models.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("cli_models", None)
    return tmp_path


def make_images(folder, names, size=(40, 30)):
    rng = np.random.default_rng(len(names))
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return folder


@pytest.fixture
def images(workdir):
    """Four images in nested folders, a corrupt PNG and a text file."""
    folder = make_images(workdir / "images", ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.bmp"])
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    (folder / "notes.txt").write_text("not an image")
    return folder


GOOD = ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.bmp"]


def outputs(out, names, method="gradient", raw="npy"):
    return [out / f"{name}.{method}.{kind}" for name in names for kind in ("png", raw)]


def explain(*args):
    return main(["explain", *map(str, args), "-q"])


def test_folder_with_corrupt_and_non_image_files(images, workdir, capsys):
    out = workdir / "out"
    assert explain(images, "--method", "gradient", "--model", "cli_models:tiny", "--out", out, *SIZE) == 1
    captured = capsys.readouterr()
    assert "corrupt.png" in captured.err and "cannot read the image" in captured.err
    assert "4 done, 0 skipped (already done), 1 failed, 1 non-image file ignored" in captured.out
    assert "failed: corrupt.png" in captured.out
    assert all(path.is_file() for path in outputs(out, GOOD))
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == sorted(str(p.relative_to(out)) for p in outputs(out, GOOD))  # nothing else, no temporaries
    saliency = np.load(out / "a.png.gradient.npy")
    assert saliency.shape == (32, 32) and saliency.dtype == np.float32 and saliency.max() > 0
    with Image.open(out / "sub" / "c.png.gradient.png") as picture:
        # The heatmap is drawn over the original picture, at its own size.
        assert picture.size == (40, 30) and picture.mode == "RGB"
        assert picture.text["xaifast:method"] == "gradient" and picture.text["xaifast:source"] == "sub/c.png"
        assert int(picture.text["xaifast:target"]) in range(5)


def test_result_equals_the_library_call(images, workdir):
    from xaifast.methods import explain as library_explain

    import cli_models

    out = workdir / "out"
    explain(images / "a.png", "--method", "grad_cam", "--model", "cli_models:model", "--out", out, *SIZE,
            "--target", "3", "--mean", "0.5", "--std", "0.25")
    with Image.open(images / "a.png") as picture:
        pixels = np.asarray(picture.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR), np.float32)
    x = (torch.from_numpy(pixels / 255).permute(2, 0, 1)[None] - 0.5) / 0.25
    expected = library_explain("grad_cam", cli_models.tiny().eval(), x, 3)[0, 0]
    torch.testing.assert_close(torch.from_numpy(np.load(out / "a.png.grad_cam.3.npy")), expected)


def test_resume_skips_finished_images_and_ignores_stale_temporaries(images, workdir, capsys):
    out = workdir / "out"
    args = (images, "--method", "gradient", "--model", "cli_models:tiny", "--out", out, *SIZE)
    explain(*args)
    capsys.readouterr()
    before = {path: path.stat().st_mtime_ns for path in outputs(out, GOOD)}
    # A run killed while writing c.png's heatmap: its raw map is there, the PNG only as a temporary.
    (out / "sub" / "c.png.gradient.png").unlink()
    stale = out / "sub" / ".c.png.gradient.png.x1y2z3.tmp"
    stale.write_bytes(b"half a PNG")
    assert explain(*args) == 1  # the corrupt image still fails
    summary = capsys.readouterr().out
    assert "1 done, 3 skipped (already done), 1 failed" in summary
    assert not stale.exists()
    assert (out / "sub" / "c.png.gradient.png").is_file()
    for path, mtime in before.items():
        if "c.png" not in path.name:
            assert path.stat().st_mtime_ns == mtime, path  # finished outputs are not rewritten
    explain(*args, "--overwrite")
    assert "4 done, 0 skipped" in capsys.readouterr().out


def test_targets_and_raw_format(images, workdir, capsys):
    out = workdir / "out"
    files = [images / "a.png", images / "sub" / "c.png"]
    assert explain(*files, "--method", "grad_cam", "--model", "cli_models:tiny", "--out", out, *SIZE,
                   "--target", "1,4", "--format", "pt", "--batch-size", "1") == 0
    assert "2 done" in capsys.readouterr().out
    # Files named on the command line: names relative to their common folder.
    for name in ("a.png", "sub/c.png"):
        for target in (1, 4):
            saliency = torch.load(out / f"{name}.grad_cam.{target}.pt", weights_only=True)
            assert saliency.shape == (32, 32) and saliency.dtype == torch.float32
    # the same map as a run for class 4 alone, in a batch with another image
    explain(*files, "--method", "grad_cam", "--model", "cli_models:tiny", "--out", workdir / "single", *SIZE,
            "--target", "4", "--format", "pt")
    torch.testing.assert_close(torch.load(out / "sub/c.png.grad_cam.4.pt"),
                               torch.load(workdir / "single" / "sub/c.png.grad_cam.4.pt"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated, still supported
def test_model_specs_give_the_same_maps(images, workdir, capsys):
    import cli_models

    model = cli_models.tiny().eval()
    torch.save(model, workdir / "whole.pt")
    torch.jit.save(torch.jit.trace(model, torch.rand(1, 3, 32, 32)), workdir / "scripted.pt")
    maps = {}
    for spec in ("cli_models:tiny", "cli_models:model", str(workdir / "whole.pt"), str(workdir / "scripted.pt")):
        out = workdir / re.sub(r"\W", "_", spec)
        assert explain(images / "b.jpg", "--method", "gradient", "--model", spec, "--out", out, *SIZE,
                       "--target", "2") == 0, spec
        maps[spec] = np.load(out / "b.jpg.gradient.2.npy")
    # TorchScript runs compiled code that ReLU rules and layer hooks cannot reach: refused, not wrong.
    assert explain(images / "b.jpg", "--method", "guided_backprop", "--model", workdir / "scripted.pt",
                   "--out", workdir / "gb", *SIZE) == 2
    assert "argument --model" in capsys.readouterr().err
    first = maps.pop("cli_models:tiny")
    for spec, saliency in maps.items():
        np.testing.assert_allclose(saliency, first, rtol=1e-5, atol=1e-7, err_msg=spec)


def test_example_model_with_class_names(workdir, capsys):
    folder = make_images(workdir / "pics", ["x.png"], size=(64, 64))
    assert main(["explain", str(folder), "--method", "grad_cam", "--out", str(workdir / "out"), "--size", "64",
                 "--target", "red disc", "-v", "-q"]) == 0
    assert "class 0 (red disc)" in capsys.readouterr().out
    assert (workdir / "out" / "x.png.grad_cam.0.png").is_file()


@pytest.mark.parametrize("args, argument", [
    (["--method", "nope"], "--method"),
    (["--target", "99"], "--target"),
    (["--target", "red dis"], "--target"),
    (["--target", "1,,2"], "--target"),
    (["--size", "big"], "--size"),
    (["--mean", "1,2"], "--mean"),
    (["--batch-size", "0"], "--batch-size"),
    (["--model", "no_such_module:make"], "--model"),
    (["--model", "cli_models:missing"], "--model"),
    (["--option", "smooth"], "--option"),
    (["--option", "bogus_option=1"], "--option"),
    (["--option", "nomethod.smooth=1"], "--option"),
    (["--layer", "grad_cam=features.99", "--method", "grad_cam"], "--layer"),
    (["--cmap", "no-such-map"], "--cmap"),
    (["--device", "warp:0"], "--device"),
])
def test_bad_arguments_exit_2_naming_the_argument(images, workdir, capsys, args, argument):
    base = {"--method": "gradient", "--model": "cli_models:tiny"}
    for key, value in zip(args[::2], args[1::2]):
        base[key] = value
    argv = ["explain", str(images / "a.png"), "--out", str(workdir / "out"), *SIZE,
            *[item for pair in base.items() for item in pair]]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own checks
        code = exit_info.code
    assert code == 2
    assert f"argument {argument}" in capsys.readouterr().err
    assert not (workdir / "out" / "a.png.gradient.png").exists()


def test_missing_input_and_torch_save_state_dict(images, workdir, capsys):
    import cli_models

    done = subprocess.run([sys.executable, "-m", "xaifast", "explain", "missing.png", "--method", "gradient",
                           "--out", "out"], capture_output=True, text=True, cwd=workdir)
    assert done.returncode == 2 and "argument IMAGES" in done.stderr and "missing.png" in done.stderr
    torch.save(cli_models.tiny().state_dict(), workdir / "weights.pt")
    assert explain(images / "a.png", "--method", "gradient", "--model", workdir / "weights.pt", "--out", "out") == 2
    assert "argument --model" in capsys.readouterr().err
    assert not (workdir / "out").exists()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes_share_the_images(workdir):
    names = [f"img{i}.png" for i in range(6)]
    folder = make_images(workdir / "many", names)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    common = ["--method", "gradient", "--model", "cli_models:tiny", *SIZE, "--batch-size", "2", "-q", "-v"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}", "-m", "xaifast", "explain", str(folder),
                           "--out", "dist", *common], capture_output=True, text=True, cwd=workdir, env=env,
                          timeout=240)
    assert done.returncode == 1, done.stdout + done.stderr  # the broken image
    # Not anchored at line starts: the two ranks share the pipe, and one rank's line may follow
    # the other's output on the same line.
    lines = re.findall(r"\[rank (\d)\] done (\S+?):", done.stdout)
    assert sorted(name for _, name in lines) == names, done.stdout + done.stderr  # every image exactly once
    assert {rank for rank, _ in lines} == {"0", "1"}  # both processes worked
    assert "6 done, 0 skipped (already done), 1 failed" in done.stdout and "on 2 processes" in done.stdout
    assert done.stderr.count("broken.jpg") >= 1

    assert main(["explain", str(folder), "--out", str(workdir / "single"), *common]) == 1
    for name in names:
        np.testing.assert_allclose(np.load(workdir / "dist" / f"{name}.gradient.npy"),
                                   np.load(workdir / "single" / f"{name}.gradient.npy"), rtol=1e-5, atol=1e-7)

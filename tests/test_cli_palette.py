"""`python -m xaifast palette IN OUT --cmap SOURCE --level L`: palette swap of heatmap PNGs."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from xaifast.cli import main
from xaifast.image import imsave, palette


def run(*args):
    return subprocess.run([sys.executable, "-m", "xaifast", "palette", *map(str, args)], capture_output=True,
                          text=True)


@pytest.fixture
def heatmap_png(tmp_path):
    path = tmp_path / "map.png"
    values = np.random.default_rng(0).standard_normal((9, 11))
    imsave(path, values, cmap="bwr", symmetric=True)
    return path


def read(path):
    with Image.open(path) as image:
        image.load()
        return image.mode, np.asarray(image).copy(), np.array(image.getpalette()).reshape(-1, 3)


def test_round_trip_builtin_and_cmsl(heatmap_png, tmp_path):
    mode, indices, colours = read(heatmap_png)
    assert mode == "P" and (colours == palette("bwr")).all()
    out = tmp_path / "coldnhot.png"
    done = run(heatmap_png, out, "--cmap", "coldnhot")
    assert done.returncode == 0, done.stderr
    mode, swapped, colours = read(out)
    assert mode == "P" and (swapped == indices).all() and (colours == palette("coldnhot")).all()
    source = "0ff,00f,80:000,f00,ff0"
    assert main(["palette", str(out), str(tmp_path / "cmsl.png"), "--cmap", source, "--level", "2"]) == 0
    mode, swapped, colours = read(tmp_path / "cmsl.png")
    assert (swapped == indices).all() and (colours == palette(source, 2.0)).all()
    assert main(["palette", str(heatmap_png), str(heatmap_png), "--level", "0.5"]) == 0  # in place, default map
    mode, swapped, colours = read(heatmap_png)
    assert (swapped == indices).all() and (colours == palette("coldnhot", 0.5)).all()
    assert sorted(os.listdir(tmp_path)) == ["cmsl.png", "coldnhot.png", "map.png"]  # no temporary files left


@pytest.mark.parametrize("cmap", ["nope", "ff0000ff,000"])
def test_bad_colour_map_exits_2(heatmap_png, tmp_path, cmap):
    done = run(heatmap_png, tmp_path / "out.png", "--cmap", cmap)
    assert done.returncode == 2 and "argument --cmap" in done.stderr and cmap in done.stderr
    assert not (tmp_path / "out.png").exists()


def test_bad_input_exits_2(heatmap_png, tmp_path, capsys):
    done = run(tmp_path / "missing.png", tmp_path / "out.png")
    assert done.returncode == 2 and "argument IN" in done.stderr and "missing.png" in done.stderr
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert main(["palette", str(text), str(tmp_path / "out.png")]) == 2
    assert "argument IN: cannot read" in capsys.readouterr().err
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    assert main(["palette", str(rgb), str(tmp_path / "out.png")]) == 2
    assert "'RGB' image, not a palette ('P') image" in capsys.readouterr().err
    assert main(["palette", str(heatmap_png), str(tmp_path / "out.png"), "--level", "nan"]) == 2
    assert "argument --level" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["palette", str(heatmap_png), str(tmp_path / "out.png"), "--level", "high"])
    assert exit_info.value.code == 2 and "--level" in capsys.readouterr().err
    assert main(["palette", str(heatmap_png), str(tmp_path / "no-such-dir" / "out.png")]) == 2
    assert "argument OUT" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["map.png", "notes.png", "rgb.png"]


def test_info_still_listed():
    usage = subprocess.run([sys.executable, "-m", "xaifast"], capture_output=True, text=True)
    assert usage.returncode == 2 and "info" in usage.stdout and "palette" in usage.stdout

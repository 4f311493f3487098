"""`xaifast demo --out DIR`: every method on the example data, one PNG per method and an HTML gallery."""

import os
import re
import subprocess
import sys

import pytest
from PIL import Image

import xaifast
from xaifast.cli import main
from xaifast.methods import METHODS

# Few RISE masks and extremal-perturbation steps: the same code paths, a fraction of the time.
TINY = ["--size", "64", "-o", "rise.num_masks=16", "-o", "rise.batch_size=8", "-o", "extremal_perturbation.max_iter=2"]


def gallery_rows(out):
    page = (out / "index.html").read_text(encoding="utf-8")
    return page, dict(re.findall(r"<tr><th>(\w+)</th><td class=\"time\">([^<]+)</td>", page))


def test_every_method_writes_a_png_and_a_gallery_row(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "-q", *TINY]) == 0
    assert sorted(os.listdir(out)) == sorted([f"{m}.png" for m in METHODS] + ["image.png", "index.html"])
    with Image.open(out / "image.png") as image:
        width, height = image.size
    for method in METHODS:
        with Image.open(out / f"{method}.png") as picture:
            # both categories side by side, each the image's size
            assert picture.mode == "RGB" and picture.height == height and picture.width > 2 * width
    page, rows = gallery_rows(out)
    assert list(rows) == list(METHODS)
    assert all(re.fullmatch(r"[\d.]+ (ms|s)", time) for time in rows.values())
    facts = xaifast.info()
    assert f"<td>{facts['version']}</td>" in page and "compiled extension loaded" in page and "threads" in page
    assert "red disc" in page and "orange star" in page  # the two categories, by name
    assert "num_masks=16" in page and "max_iter=2" in page  # the options each method ran with
    printed = capsys.readouterr().out
    assert f"{len(METHODS)} of {len(METHODS)} methods" in printed and str(out / "index.html") in printed


def test_subset_and_a_failing_method(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--methods", "center,grad_cam", "-q", "--repeat", "2", "--size", "64",
                 "-o", "grad_cam.no_such_option=1"])
    assert code == 1  # grad_cam failed, center did not
    assert "grad_cam failed" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["center.png", "image.png", "index.html"]
    page, rows = gallery_rows(out)
    assert list(rows) == ["center", "grad_cam"] and rows["grad_cam"] == "&ndash;"
    assert "failed: TypeError" in page and "median of 2 runs" in page


@pytest.mark.parametrize("args, argument", [
    (["--methods", "gradient,nope"], "--methods"),
    (["--repeat", "0"], "--repeat"),
    (["--option", "nope.x=1"], "--option"),
    (["--cmap", "no-such-map"], "--cmap"),
    (["--size", "32"], "--size"),
    (["--arch", "lenet-9000"], "--arch"),
])
def test_bad_arguments_exit_2(tmp_path, capsys, args, argument):
    assert main(["demo", "--out", str(tmp_path / "demo"), *args]) == 2
    assert f"argument {argument}" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_command_line_entry(tmp_path, capsys):
    done = subprocess.run([sys.executable, "-m", "xaifast", "demo", "--out", str(tmp_path / "d"), "--methods",
                           "center", "--size", "64", "--threads", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "gallery:" in done.stdout and (tmp_path / "d" / "index.html").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["demo"])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err

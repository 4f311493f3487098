"""``xaifast demo --out DIR``: every attribution method on the example data, and a gallery.

The example is :func:`xaifast.benchmark.get_example_data` (by default the embedded model and its
picture with two objects). Each method explains both objects at once, as a batch of two with one
target per image, so one timing covers both. Written to ``DIR``, each file atomically:

* ``image.png``: the input picture;
* ``<method>.png``: two overlays side by side, the heatmap for category 1 then for category 2;
* ``index.html``: the gallery, with each method's time and the facts of the installation.
"""

import datetime
import html
import os
import statistics
import sys
import time

import torch

from ._atomic import atomic_open
from ._cli_inputs import IMAGENET_MEAN, IMAGENET_STD, UsageError
from ._explain import emit
from ._progress import progress

__all__ = ["run", "format_seconds"]

_GAP = 8  # pixels between the two overlays of a method's PNG

# Lighter settings than the methods' (TorchRay's) defaults of 8000 masks and 800 steps, which take
# minutes on a laptop CPU: on the example image the extremal masks look the same and the RISE maps a
# little noisier. `--full` drops them; `-o rise.num_masks=...` overrides them.
QUICK_OPTIONS = {"rise": {"num_masks": 2000}, "extremal_perturbation": {"max_iter": 150}}


def format_seconds(seconds):
    """``0.0123`` -> ``'12.3 ms'``, ``2.5`` -> ``'2.50 s'``."""
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"


def _save_png(picture, path):
    with atomic_open(path) as stream:
        picture.save(stream, format="PNG")


def _side_by_side(pictures):
    from PIL import Image

    width = sum(p.width for p in pictures) + _GAP * (len(pictures) - 1)
    sheet = Image.new("RGB", (width, max(p.height for p in pictures)), (255, 255, 255))
    left = 0
    for picture in pictures:
        sheet.paste(picture, (left, 0))
        left += picture.width + _GAP
    return sheet


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _time_method(explain, method, model, x, targets, layers, options, repeat, device):
    """``(saliency, median seconds)`` over ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        saliency = explain(method, model, x, targets, layers=layers, **options)
        _sync(device)
        times.append(time.perf_counter() - start)
    return saliency, statistics.median(times)


def _describe(options):
    return ", ".join(f"{key}={value!r}" for key, value in options.items()) or "defaults"


def _gallery(results, facts, classes, targets):
    """The HTML page: one row per method with its time and its two heatmaps."""
    esc = html.escape
    names = [f"{t}: {classes[t]}" if classes and 0 <= t < len(classes) else str(t) for t in targets]
    rows = []
    for method, seconds, error, options in results:
        if error is None:
            cell = f'<img src="{esc(method)}.png" alt="{esc(method)} heatmaps">'
            timing = esc(format_seconds(seconds))
        else:
            cell = f'<span class="error">failed: {esc(error)}</span>'
            timing = "&ndash;"
        rows.append(f"<tr><th>{esc(method)}</th><td class=\"time\">{timing}</td><td>{cell}</td>"
                    f"<td class=\"options\">{esc(_describe(options))}</td></tr>")
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in facts.items())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>xaifast demo</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 4px 10px; text-align: left; vertical-align: middle; }}
.methods tr {{ border-top: 1px solid #ddd; }}
.time {{ font-variant-numeric: tabular-nums; text-align: right; white-space: nowrap; }}
.error {{ color: #b00; }}
.options {{ color: #666; font-size: small; }}
.facts th {{ font-weight: normal; color: #666; }}
</style>
</head>
<body>
<h1>xaifast demo</h1>
<p><img src="image.png" alt="the example image"></p>
<p>Each row: the heatmap for <b>{esc(names[0])}</b> (left) and for <b>{esc(names[1])}</b> (right),
blended with the image. Time: both maps, computed as one batch of two
(median of {facts['repeat']} run{'s' * (facts['repeat'] != 1)}, after one untimed warm-up pass).</p>
<table class="methods">
<tr><th>method</th><th class="time">time</th><th>heatmaps</th><th>options</th></tr>
{chr(10).join(rows)}
</table>
<h2>Run</h2>
<table class="facts">{fact_rows}</table>
</body>
</html>
"""


def run(args, explain, methods):
    """Run the demo; returns the exit code (0, or 1 if a method failed)."""
    from . import info
    from ._heatmap_images import to_pil
    from .benchmark import get_example_data
    from .benchmark.datasets import denormalize
    from .overlay import overlay

    started = time.perf_counter()
    try:
        model, x, category_1, category_2 = get_example_data(arch=args.arch, shape=args.size)
    except ValueError as err:
        raise UsageError("--arch", str(err)) from None
    model, x = model.to(args.device), x.to(args.device)
    targets = [category_1, category_2]
    batch = x.expand(2, -1, -1, -1).contiguous()
    layers = getattr(model, "xaifast_layers", None)
    classes = getattr(model, "classes", None)
    os.makedirs(args.out, exist_ok=True)
    _save_png(to_pil(denormalize(x[:1]).float().cpu())[0], os.path.join(args.out, "image.png"))

    # Untimed warm-up: torch's one-time costs (autograd engine, allocator, thread pool) are no method's.
    explain("gradient", model, batch, targets)
    results = []
    bar = progress(methods, total=len(methods), desc="demo", enable=not args.quiet)
    for method in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(method)
        options = {**({} if args.full else QUICK_OPTIONS.get(method, {})), **args.options.get(method, {})}
        try:
            saliency, seconds = _time_method(explain, method, model, batch, targets, layers, options,
                                             args.repeat, args.device)
            pictures = overlay(saliency.detach().float(), batch, cmap=args.cmap, mean=IMAGENET_MEAN,
                               std=IMAGENET_STD)
            _save_png(_side_by_side(pictures), os.path.join(args.out, f"{method}.png"))
        except Exception as err:  # one broken method must not hide the others
            emit(bar, f"xaifast demo: {method} failed: {type(err).__name__}: {err}", sys.stderr)
            results.append((method, None, f"{type(err).__name__}: {err}", options))
            continue
        results.append((method, seconds, None, options))

    facts = info()
    page_facts = {
        "xaifast": facts["version"], "torch": facts["torch"], "device": args.device,
        "threads": torch.get_num_threads(), "compiled extension loaded": facts["extension_loaded"],
        "CPU kernels": facts.get("cpu_dispatch") or "-", "model": type(model).__name__,
        "image": "x".join(str(s) for s in x.shape[-2:]), "repeat": args.repeat,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if not facts["extension_loaded"]:
        page_facts["why not loaded"] = facts.get("load_error") or "-"
    page = os.path.join(args.out, "index.html")
    with atomic_open(page, "w") as stream:
        stream.write(_gallery(results, page_facts, classes, targets))

    failed = [method for method, _, error, _ in results if error is not None]
    for method, seconds, error, options in results:
        print(f"  {method:<32} {'failed' if error else format_seconds(seconds):>10}  {_describe(options)}")
    print(f"xaifast demo: {len(results) - len(failed)} of {len(results)} methods in "
          f"{format_seconds(time.perf_counter() - started)}; gallery: {os.path.abspath(page)}")
    return 1 if failed else 0

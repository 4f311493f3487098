"""The ``xaifast`` command line.

Sub-commands (README.md, "Command line", has the details):

* ``demo --out DIR``: every method of :data:`xaifast.methods.METHODS` on the example data; one PNG
  per method and ``DIR/index.html``, a gallery with each method's time (:mod:`xaifast._demo`).
* ``explain IMAGES... --method NAME --out DIR``: per image a PNG heatmap and the raw map; batched,
  resumable, atomic writes, corrupt images reported and skipped; sharded across processes under
  torchrun (:mod:`xaifast._explain`, :mod:`xaifast._distributed`).
* ``info``: print :func:`xaifast.info` (``--json`` for machine-readable output).
* ``palette IN OUT --cmap SOURCE --level L``: give a palette heatmap image (as written by
  :func:`xaifast.image.imsave` for one-channel maps) the palette of another colour map, like
  zennit's ``palette_swap.py``, but ``SOURCE`` may also be CMSL and the output is a new file,
  written atomically. Exit code 2 with a message naming the argument on bad input.
"""

import argparse
import ast
import inspect
import json
import os
import sys

import torch

from ._atomic import atomic_open
from ._cli_inputs import (IMAGENET_MEAN, IMAGENET_STD, TORCHSCRIPT_METHODS, TorchScriptModel, UsageError,
                          load_model, parse_device, parse_floats, parse_size, parse_targets)


def _cmd_info(args):
    from . import info

    facts = info()
    if args.json:
        print(json.dumps(facts, indent=2))
        return 0
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value) or "-"
        print(f"{key:<{width}}  {value}")
    return 0


def _fail(argument, message, command="palette"):
    print(f"python -m xaifast {command}: error: argument {argument}: {message}", file=sys.stderr)
    return 2


def _cmd_palette(args):
    from PIL import Image, UnidentifiedImageError

    from .cmap import CMSLError
    from .image import palette

    try:
        colours = palette(args.cmap, args.level)
    except CMSLError as err:
        return _fail("--cmap", str(err))
    except (TypeError, ValueError) as err:
        return _fail("--level", str(err))
    try:
        with Image.open(args.input) as source:
            source.load()
            image = source.copy()
            kind = source.format
    except (OSError, UnidentifiedImageError, ValueError) as err:
        return _fail("IN", f"cannot read {args.input!r}: {err}")
    if image.mode != "P":
        return _fail("IN", f"{args.input!r} is a {image.mode!r} image, not a palette ('P') image as written by "
                     "xaifast.image.imsave / imgify for single-channel heatmaps")
    image.info.pop("transparency", None)
    image.putpalette(colours.tobytes())  # bytes: Pillow 13 rejects an ndarray here
    extension = os.path.splitext(args.output)[1].lower()
    kind = Image.registered_extensions().get(extension, kind or "PNG")
    try:
        with atomic_open(args.output) as stream:
            image.save(stream, format=kind)
    except (OSError, ValueError, KeyError) as err:
        return _fail("OUT", f"cannot write {args.output!r}: {err}")
    return 0


def _methods():
    from .methods import METHODS

    return list(METHODS)


def _options(pairs, methods):
    """``--option [METHOD.]KEY=VALUE`` -> ``{method: {key: value}}``; values are Python literals or strings."""
    per_method = {method: {} for method in methods}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        method, dot, name = key.rpartition(".")
        if not sep or not name.isidentifier():
            raise UsageError("--option", f"expected [METHOD.]KEY=VALUE such as rise.num_masks=1000, got {pair!r}")
        if dot and method not in per_method:
            raise UsageError("--option", f"{method!r} in {pair!r} is not a method; methods: {', '.join(methods)}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word: a string
        for target in [method] if dot else per_method:
            per_method[target][name] = value
    return per_method


def _common_setup(args):
    """Checks and settings shared by demo and explain: device, threads, options."""
    args.device = parse_device(args.device)
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads", f"must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    args.options = _options(args.option, _methods())
    from ._heatmap_images import colour_table

    try:
        colour_table(args.cmap, "--cmap")
    except (TypeError, ValueError) as err:
        raise UsageError("--cmap", str(err)) from None


def _cmd_demo(args):
    from . import _demo
    from .methods import explain

    try:
        _common_setup(args)
        methods = _methods()
        if args.methods:
            chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
            unknown = [m for m in chosen if m not in methods]
            if unknown or not chosen:
                raise UsageError("--methods", f"unknown method(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                                 f"choose from {', '.join(methods)}")
            methods = chosen
        if args.repeat < 1:
            raise UsageError("--repeat", f"must be >= 1, got {args.repeat}")
        if args.size < 64:
            raise UsageError("--size", f"must be >= 64 (the example's objects need room), got {args.size}")
        return _demo.run(args, explain, methods)
    except UsageError as err:
        return _fail(err.argument, str(err).split(": ", 1)[1], "demo")


def _check_explain_options(args, model, explain):
    """Catch a wrong layer, option or model before the first image: one blank image through the method."""
    from .attribution.extremal_perturbation import extremal_perturbation
    from .attribution.rise import rise

    options = args.options
    expensive = {"rise": rise, "extremal_perturbation": extremal_perturbation}
    if args.method in expensive:  # a dry run would cost as much as an image: check the option names only
        accepted = inspect.signature(expensive[args.method]).parameters
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise UsageError("--option", f"{args.method} takes no option {', '.join(map(repr, unknown))}")
        return
    try:
        explain(args.method, model, torch.zeros(1, 3, *args.size), 0, layers=args.layers, **options)
    except (TypeError, ValueError) as err:
        argument = "--layer" if "layer" in str(err) else "--option" if options else "--model"
        raise UsageError(argument, f"{args.method} cannot run: {err}") from None


def _cmd_explain(args):
    from . import _explain
    from .methods import LAYER_KEYS, explain

    try:
        _common_setup(args)
        args.options = args.options[args.method]
        args.size = parse_size(args.size)
        args.mean = parse_floats(args.mean, "--mean")
        args.std = parse_floats(args.std, "--std")
        if min(args.std) <= 0:
            raise UsageError("--std", f"must be > 0, got {args.std}")
        args.targets = parse_targets(args.target)
        if args.batch_size < 1:
            raise UsageError("--batch-size", f"must be >= 1, got {args.batch_size}")
        if not 0.0 <= args.image_weight <= 1.0:
            raise UsageError("--image-weight", f"must be in [0, 1], got {args.image_weight}")
        for item in args.inputs:
            if os.path.isdir(item) and os.path.abspath(item) == os.path.abspath(args.out):
                raise UsageError("--out", f"{args.out!r} is an input folder: its heatmaps would become inputs")
            if not os.path.exists(item):
                raise UsageError("IMAGES", f"{item!r} is neither a file nor a folder")
        model = load_model(args.model)
        if isinstance(model, TorchScriptModel) and args.method not in TORCHSCRIPT_METHODS:
            raise UsageError("--model", f"{args.model!r} is TorchScript, which runs only "
                             f"{', '.join(TORCHSCRIPT_METHODS)}: {args.method} hooks layers or patches ReLU and "
                             "convolution calls, which compiled code bypasses; give the model as "
                             "'package.module:callable' or a torch.save file")
        if args.layer:
            args.layers = dict(getattr(model, "xaifast_layers", None) or {})
            for pair in args.layer:
                key, sep, name = pair.partition("=")
                if not sep or key not in LAYER_KEYS or not name:
                    raise UsageError("--layer", f"expected ROLE=MODULE with ROLE in {', '.join(LAYER_KEYS)}, "
                                     f"got {pair!r}")
                args.layers[key] = name
        else:
            args.layers = None
        _check_explain_options(args, model, explain)
        return _explain.run(args, model, explain)
    except UsageError as err:
        return _fail(err.argument, str(err).split(": ", 1)[1], "explain")


def _add_common(parser):
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device,
                        help=f"where to compute: cpu, cuda, cuda:1, ... (default: {default_device})")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: torch's choice; torchrun sets 1 per process)")
    parser.add_argument("--cmap", default="jet",
                        help="colour map of the heatmaps: xaifast.colormaps name or CMSL (default: jet)")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="[METHOD.]KEY=VALUE",
                        help="a keyword argument for the method(s), e.g. rise.num_masks=1000 or "
                             "extremal_perturbation.max_iter=200; without METHOD. it goes to every method run "
                             "(repeatable)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m xaifast", description="Fast attribution for PyTorch vision models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p_demo = sub.add_parser("demo", help="every method on the example data: heatmaps and an HTML gallery",
                            description="Run every attribution method on the example image, for both of its "
                            "categories; write DIR/<method>.png and the gallery DIR/index.html with each method's time.")
    p_demo.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p_demo.add_argument("--methods", default=None, metavar="A,B,...", help="only these methods (default: all)")
    p_demo.add_argument("--arch", default="example",
                        help="'example' (default: the embedded model) or a torchvision classifier such as vgg16, "
                             "used when its weights are cached and XAIFAST_EXAMPLE_IMAGE names the picture")
    p_demo.add_argument("--full", action="store_true",
                        help="run RISE and extremal perturbation with their own (TorchRay's) defaults, 8000 masks "
                             "and 800 steps, instead of the demo's 2000 and 150 (minutes on a CPU)")
    p_demo.add_argument("--size", type=int, default=224, help="side of the example image, >= 64 (default: 224)")
    p_demo.add_argument("--repeat", type=int, default=1, help="time each method N times, report the median "
                        "(default: 1)")
    _add_common(p_demo)
    p_demo.set_defaults(func=_cmd_demo)

    p_exp = sub.add_parser("explain", help="saliency maps for image files and folders",
                           description="Explain images with one method: per image a PNG heatmap over the image and "
                           "the raw map. Resumable: images whose outputs exist are skipped. Under torchrun the "
                           "images are shared among the processes.")
    p_exp.add_argument("inputs", nargs="+", metavar="IMAGES", help="image files and folders (searched recursively)")
    p_exp.add_argument("--method", required=True, choices=_methods(), metavar="NAME",
                       help="one of: " + ", ".join(_methods()))
    p_exp.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    p_exp.add_argument("--model", default="example", metavar="SPEC",
                       help="'example' (default: the embedded model), 'package.module:callable' (returns an "
                            "nn.Module), a TorchScript file, or a torch.save'd nn.Module (unpickled: trusted files only)")
    p_exp.add_argument("--target", default="top", metavar="top|C[,C...]",
                       help="class to explain: 'top' (each image's predicted class, default), a class index or "
                            "name, or a comma-separated list (one heatmap per class)")
    p_exp.add_argument("--size", default="224", metavar="S|HxW", help="model input size (default: 224)")
    p_exp.add_argument("--mean", default=",".join(map(str, IMAGENET_MEAN)), metavar="M,M,M",
                       help="per-channel mean subtracted from [0, 1] pixels (default: ImageNet's)")
    p_exp.add_argument("--std", default=",".join(map(str, IMAGENET_STD)), metavar="S,S,S",
                       help="per-channel std the pixels are divided by (default: ImageNet's)")
    p_exp.add_argument("--layer", action="append", default=[], metavar="ROLE=MODULE",
                       help="a layer for the layer-level methods, ROLE one of grad_cam, saliency_layer, "
                            "contrast_layer, classifier_layer (default: model.xaifast_layers, else inferred)")
    p_exp.add_argument("--batch-size", type=int, default=8, help="images per batch (default: 8)")
    p_exp.add_argument("--format", choices=("npy", "pt"), default="npy", help="raw map file type (default: npy)")
    p_exp.add_argument("--image-weight", type=float, default=0.5,
                       help="weight of the image in the PNG; 0 gives the bare heatmap (default: 0.5)")
    p_exp.add_argument("--overwrite", action="store_true", help="redo images whose outputs exist")
    p_exp.add_argument("--verbose", "-v", action="store_true", help="one line per image written")
    _add_common(p_exp)
    p_exp.set_defaults(func=_cmd_explain)

    p_info = sub.add_parser("info", help="show the installation: extension, kernels, torch, threads")
    p_info.add_argument("--json", action="store_true", help="print JSON")
    p_info.set_defaults(func=_cmd_info)
    p_pal = sub.add_parser("palette", help="swap the colour map of a palette heatmap image (imsave output)")
    p_pal.add_argument("input", metavar="IN", help="palette ('P') image, e.g. a PNG written by xaifast.image.imsave")
    p_pal.add_argument("output", metavar="OUT", help="where to write the result (may equal IN)")
    p_pal.add_argument("--cmap", default="coldnhot", metavar="SOURCE",
                       help="built-in name (gray, bwr, coldnhot, ...) or CMSL source such as '00f,80:fff,f00' "
                            "(default: coldnhot)")
    p_pal.add_argument("--level", type=float, default=1.0, help="palette contrast as in palette(cmap, level) "
                       "(default: 1.0)")
    p_pal.set_defaults(func=_cmd_palette)
    return parser


def main(argv=None):
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)

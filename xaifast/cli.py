"""The ``xaifast`` command line.

Sub-commands:

* ``info``: print :func:`xaifast.info` (``--json`` for machine-readable output).
* ``palette IN OUT --cmap SOURCE --level L``: give a palette heatmap image (as written by
  :func:`xaifast.image.imsave` for one-channel maps) the palette of another colour map, like
  zennit's ``palette_swap.py``, but ``SOURCE`` may also be CMSL and the output is a new file,
  written atomically. Exit code 2 with a message naming the argument on bad input.
"""

import argparse
import json
import os
import sys
import tempfile


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


def _fail(argument, message):
    print(f"python -m xaifast palette: error: argument {argument}: {message}", file=sys.stderr)
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
    folder = os.path.dirname(os.path.abspath(args.output))
    try:
        handle, temporary = tempfile.mkstemp(prefix=".palette-", suffix=extension, dir=folder)
    except OSError as err:
        return _fail("OUT", f"cannot write into {folder!r}: {err}")
    try:
        with os.fdopen(handle, "wb") as stream:
            image.save(stream, format=kind)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(temporary, args.output)
    except (OSError, ValueError, KeyError) as err:
        os.unlink(temporary)
        return _fail("OUT", f"cannot write {args.output!r}: {err}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m xaifast", description="Fast attribution for PyTorch vision models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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

"""Regenerate the colour tables embedded in ``xaifast/colormaps.py``.

Run once (or when a table is added) from the repository root:

    python scripts/make_colormaps.py [--batlow PATH_TO_batlow.txt] [--check]

Needs matplotlib (>= 3.10, for ``berlin``). ``batlow`` is not in matplotlib: it is read from
Fabio Crameri's ``batlow.txt`` (256 rows of float RGB), found in an installed ``cmcrameri``
package or given with ``--batlow``; without either, the table already in the module is kept.

Every table is ``round(255 * rgb)`` of the map sampled at ``numpy.linspace(0, 1, 256)``, i.e.
the map's own 256 entries, as uint8, stored base64-encoded (768 bytes -> 1024 characters).
The block between the ``BEGIN GENERATED TABLES`` / ``END GENERATED TABLES`` markers of the
module is rewritten in place; ``--check`` only reports whether it is up to date.
"""

import argparse
import base64
import importlib.util
import pathlib
import re
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE = ROOT / "xaifast" / "colormaps.py"
BEGIN, END = "# BEGIN GENERATED TABLES", "# END GENERATED TABLES"
# The order here is the order of xaifast.colormaps.names().
MATPLOTLIB_MAPS = ["viridis", "inferno", "magma", "plasma", "cividis", "turbo", "jet", "gray", "hot",
                   "seismic", "berlin"]
LINE = 96  # characters of base64 per source line


def to_uint8(rgb):
    """(256, 3+) floats in [0, 1] -> (256, 3) uint8, rounded to nearest."""
    rgb = np.asarray(rgb, dtype=np.float64)[:, :3]
    if rgb.shape != (256, 3):
        raise ValueError(f"expected 256 colours, got shape {rgb.shape}")
    return np.round(rgb * 255.0).clip(0, 255).astype(np.uint8)


def matplotlib_table(name):
    import matplotlib

    return to_uint8(matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256)))


def hotcold_table():
    """TruLens' default colour map: its cold half is binary * cool, its hot half hot, 128 each."""
    import matplotlib

    ramp = np.linspace(0.0, 1.0, 128)
    hot, cool, binary = (matplotlib.colormaps[n].resampled(128) for n in ("hot", "cool", "binary"))
    return to_uint8(np.vstack((binary(ramp) * cool(ramp), hot(ramp))))


def batlow_table(path, current):
    if path is None:
        spec = importlib.util.find_spec("cmcrameri")
        if spec is not None and spec.submodule_search_locations:
            candidate = pathlib.Path(list(spec.submodule_search_locations)[0]) / "cmaps" / "batlow.txt"
            path = candidate if candidate.exists() else None
    if path is None:
        if "batlow" not in current:
            sys.exit("batlow: no cmcrameri installed and no --batlow file given, and no table to keep")
        print("batlow: source not found, keeping the table already in the module", file=sys.stderr)
        return current["batlow"]
    return to_uint8(np.loadtxt(path))


def current_tables():
    """The tables now embedded in the module, decoded (empty if there are none yet)."""
    text = MODULE.read_text(encoding="utf-8")
    block = text[text.index(BEGIN):text.index(END)]
    tables = {}
    for name, body in re.findall(r'"(\w+)": \(\n(.*?)\),\n', block, flags=re.S):
        encoded = "".join(re.findall(r'"([A-Za-z0-9+/=]*)"', body))
        tables[name] = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(256, 3)
    return tables


def render(tables):
    lines = [BEGIN + " (scripts/make_colormaps.py; do not edit by hand)", "_ENCODED = {"]
    for name, table in tables.items():
        encoded = base64.b64encode(table.tobytes()).decode("ascii")
        lines.append(f'    "{name}": (')
        lines += [f'        "{encoded[i:i + LINE]}"' for i in range(0, len(encoded), LINE)]
        lines.append("    ),")
    lines += ["}", END]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batlow", type=pathlib.Path, default=None, help="Crameri's batlow.txt")
    parser.add_argument("--check", action="store_true", help="only tell whether the module is up to date")
    args = parser.parse_args()

    current = current_tables()
    tables = {name: matplotlib_table(name) for name in MATPLOTLIB_MAPS}
    tables["batlow"] = batlow_table(args.batlow, current)
    tables["hotcold"] = hotcold_table()

    text = MODULE.read_text(encoding="utf-8")
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    new_text = text[:start] + render(tables) + text[stop:]
    if args.check:
        same = new_text == text
        print("up to date" if same else "out of date: run scripts/make_colormaps.py")
        sys.exit(0 if same else 1)
    MODULE.write_text(new_text, encoding="utf-8")
    print(f"wrote {len(tables)} tables to {MODULE.relative_to(ROOT)}: {', '.join(tables)}")


if __name__ == "__main__":
    main()

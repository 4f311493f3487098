"""Turn a pytest-benchmark JSON file into the Markdown table of BENCHMARKS.md.

Usage: python benchmarks/report.py bench.json [--baseline torchray,reference] [--extra]
For each group, every implementation's median (ms) and its speed-up over the group's baseline
(the baseline's median divided by its own), all from the one run in the file. ``--baseline``
takes a comma-separated list in order of preference: each group is compared with the first of
them it holds (e.g. TorchRay for whole methods, the reference for op-level groups); a ratio
taken against a fallback names it. Groups holding none of them show ``-``.
"""

import argparse
import json
from collections import defaultdict


def _baseline(stats, baselines):
    for name in baselines:
        if stats.get(name, {}).get("median"):
            return name
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json_file")
    parser.add_argument("--baseline", default="reference",
                        help="impl the ratios are taken against; a comma-separated list gives per-group fallbacks")
    parser.add_argument("--extra", action="store_true", help="append each result's extra_info numbers")
    args = parser.parse_args(argv)
    baselines = [name.strip() for name in args.baseline.split(",") if name.strip()]
    with open(args.json_file) as handle:
        data = json.load(handle)
    groups = defaultdict(dict)
    info = {}
    for bench in data["benchmarks"]:
        impl = bench["params"].get("impl", bench["name"])
        groups[bench["group"]][impl] = dict(bench["stats"], extra=bench.get("extra_info", {}))
        info = bench.get("extra_info", info)
    print(f"threads: {info.get('threads')}, torch {info.get('torch')}, CPU: {info.get('cpu')}\n")
    header = baselines[0] + "".join(f" (else {name})" for name in baselines[1:])
    print("| case | impl | median (ms) | IQR (ms) | speed-up vs " + header + " |")
    print("|---|---|---:|---:|---:|")
    for group in sorted(groups):
        stats = groups[group]
        name = _baseline(stats, baselines)
        base = stats[name]["median"] if name else None
        for impl, s in sorted(stats.items(), key=lambda kv: kv[1]["median"]):
            ratio = f"{base / s['median']:.1f}x" if base else "-"
            if base and name != baselines[0]:
                ratio += f" vs {name}"
            extra = ""
            if args.extra:
                numbers = {k: v for k, v in s["extra"].items() if isinstance(v, float)}
                extra = " " + ", ".join(f"{k}={v:.4g}" for k, v in numbers.items())
            print(f"| {group} | {impl} | {s['median'] * 1e3:.2f} | {s['iqr'] * 1e3:.2f} | {ratio}{extra} |")


if __name__ == "__main__":
    main()

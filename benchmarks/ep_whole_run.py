"""Whole extremal_perturbation runs, xaifast vs TorchRay, in one process (not a pytest file).

bench_extremal.py times 5-iteration calls, where the pyramid build weighs on every iteration;
this runs ``--iters`` iterations end to end (after one short warm-up call each), for one and for
four areas, with bench_extremal's near-free model, ``--repeats`` times with the two
implementations alternating, and prints the per-iteration times (best and median run) and
their ratio: on a shared machine a run can be slowed by half by a neighbour.

Run: ``.venv/bin/python benchmarks/ep_whole_run.py --iters 100`` (about three minutes at 2
threads: TorchRay's four-area iteration is ~0.4 s).
"""

import argparse
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_extremal as bench  # noqa: E402  (the model and image of the e2e benchmark)

import xaifast.attribution.extremal_perturbation as xaifast_ep  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=100, help="iterations per run (default: 100)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per implementation and case (default: 3)")
    parser.add_argument("--cases", choices=["one", "four", "both"], default="both",
                        help="one area, four areas or both (default: both)")
    args = parser.parse_args()
    if args.iters < 1:
        parser.error("--iters must be >= 1")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if bench.torchray_ep is None:
        sys.exit("ep_whole_run: TorchRay is not installed (pip install --no-deps torchray==1.0.0.2)")
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    model, image = bench._CheapModel().eval(), bench._image()
    runs = {"xaifast": xaifast_ep.extremal_perturbation, "torchray": bench.torchray_ep.extremal_perturbation}
    for run in runs.values():  # warm-up: first-call costs stay out of the timings
        run(model, image, bench.TARGET, areas=[0.1], max_iter=3)
    cases = {"one": [[0.1]], "four": [[0.05, 0.1, 0.2, 0.3]]}
    for areas in cases.get(args.cases, cases["one"] + cases["four"]):
        per_iter = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run(model, image, bench.TARGET, areas=areas, max_iter=args.iters)
                per_iter[name].append((time.perf_counter() - start) / args.iters * 1e3)
        best = {name: min(times) for name, times in per_iter.items()}
        median = {name: statistics.median(times) for name, times in per_iter.items()}
        print(f"{len(areas)} area(s), {args.iters} iterations, {args.threads} threads, best of {args.repeats}: "
              f"xaifast {best['xaifast']:.2f} ms/iter, torchray {best['torchray']:.1f} ms/iter, "
              f"{best['torchray'] / best['xaifast']:.1f}x (medians: {median['xaifast']:.2f}, "
              f"{median['torchray']:.1f} ms/iter, {median['torchray'] / median['xaifast']:.1f}x)")

if __name__ == "__main__":
    main()

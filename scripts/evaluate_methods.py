"""Evaluate every attribution method of :data:`xaifast.methods.METHODS` on the embedded example set.

For each image of ``make_example_set(--num-images, --seed)`` and each object class in it (one
``(image, class)`` pair each, as TorchRay's pointing-game benchmark does), the method explains that
class with the embedded example model; the script then scores the maps with

* the pointing game (TorchRay's: a hit when the map's maximum is within 15 px of the class's
  object; the mean of the per-class accuracies), higher is better;
* RISE's deletion AUC (lower is better; pixels replaced by zeros, the mean colour) and insertion
  AUC (higher is better; pixels put back into a Gaussian blur of the image), on the sigmoid
  probability of the class (the model is multi-label), ``--steps`` steps. The insertion blur is
  ``--blur-sigma`` 20 px rather than the paper's 5: the shapes stay recognisable under a 5 px blur
  (probability 0.94 on average), which leaves insertion no room;

and prints a Markdown table with the time each method took for all pairs.

Settings follow TorchRay's ``examples/attribution_benchmark.py`` where it has them: gradient,
deconvnet and guided backprop maps are smoothed (``smooth=0.02``); RISE computes every class of
an image at once and reads off the classes present (``seed=0``); extremal perturbation uses
``smooth=0.09`` (and sums the masks of several ``--areas``). The other settings are :func:`xaifast.methods.explain`'s
defaults. The evaluation seed (2) is disjoint from the training (0) and validation (1) sets of
``scripts/train_example_model.py``.

Usage::

    python scripts/evaluate_methods.py                      # the BENCHMARKS.md table
    python scripts/evaluate_methods.py --num-images 10 --methods grad_cam rise
"""

import argparse
import platform
import time

import torch

from xaifast.attribution.rise import rise
from xaifast.benchmark.datasets import CLASSES, make_example_set
from xaifast.benchmark.evaluation import deletion_insertion
from xaifast.benchmark.models import get_example_model
from xaifast.benchmark.pointing_game import pointing_game
from xaifast.methods import METHODS, explain

LABELS = {
    "gradient": "gradient",
    "deconvnet": "deconvnet",
    "guided_backprop": "guided backprop",
    "grad_cam": "Grad-CAM",
    "linear_approx": "linear approximation",
    "excitation_backprop": "excitation backprop",
    "contrastive_excitation_backprop": "contrastive excitation backprop",
    "rise": "RISE",
    "extremal_perturbation": "extremal perturbation",
    "center": "centre baseline",
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=24, help="images in the set (default 24)")
    parser.add_argument("--seed", type=int, default=2, help="seed of the set (default 2: held out)")
    parser.add_argument("--num-masks", type=int, default=1000, help="RISE masks (default 1000)")
    parser.add_argument("--max-iter", type=int, default=100, help="extremal perturbation iterations (default 100)")
    parser.add_argument("--areas", type=float, nargs="+", default=[0.1],
                        help="extremal perturbation areas, masks summed per image (default 0.1)")
    parser.add_argument("--steps", type=int, default=112,
                        help="deletion/insertion steps (default 112: 448 px each at 224 x 224; the paper: 224)")
    parser.add_argument("--blur-sigma", type=float, default=20.0,
                        help="insertion substrate blur in px (default 20; the paper's 5 leaves the shapes "
                             "recognisable)")
    parser.add_argument("--tolerance", type=int, default=15, help="pointing game tolerance in px (default 15)")
    parser.add_argument("--batch-size", type=int, default=32, help="(image, class) pairs per call (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS),
                        help="methods to run (default: all)")
    return parser.parse_args()


def method_options(name, args):
    if name in ("gradient", "deconvnet", "guided_backprop"):
        return {"smooth": 0.02}
    if name == "extremal_perturbation":
        return {"max_iter": args.max_iter, "areas": list(args.areas), "smooth": 0.09}
    return {}


def rise_maps(model, data, image_ids, class_ids, args):
    """RISE's maps for every pair: all classes of each image at once (TorchRay's benchmark does so)."""
    maps = torch.empty(len(image_ids), 1, *data.images.shape[2:])
    for begin in range(0, len(data), args.batch_size):
        images = data.images[begin:begin + args.batch_size]
        all_classes = rise(model, images, seed=0, num_masks=args.num_masks)
        for i, (n, c) in enumerate(zip(image_ids.tolist(), class_ids.tolist())):
            if begin <= n < begin + len(images):
                maps[i, 0] = all_classes[n - begin, c]
    return maps


def saliency_maps(name, model, data, image_ids, class_ids, args):
    if name == "rise":
        return rise_maps(model, data, image_ids, class_ids, args)
    options = method_options(name, args)
    chunks = []
    for begin in range(0, len(image_ids), args.batch_size):
        images = data.images[image_ids[begin:begin + args.batch_size]]
        chunks.append(explain(name, model, images, class_ids[begin:begin + args.batch_size], **options))
    return torch.cat(chunks)


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    model = get_example_model()
    data = make_example_set(args.num_images, seed=args.seed)
    pairs = [(n, c, mask) for n, objects in enumerate(data.objects) for c, mask in objects]
    image_ids = torch.tensor([n for n, _, _ in pairs])
    class_ids = torch.tensor([c for _, c, _ in pairs])
    masks = torch.stack([mask for _, _, mask in pairs])

    rows = []
    for name in args.methods:
        start = time.perf_counter()
        maps = saliency_maps(name, model, data, image_ids, class_ids, args)
        seconds = time.perf_counter() - start
        accuracy, _ = pointing_game(maps, masks, class_ids, len(CLASSES), tolerance=args.tolerance)
        images = data.images[image_ids]
        deletion = deletion_insertion(model, images, maps, class_ids, mode="deletion", steps=args.steps,
                                      score="sigmoid", batch_size=64)["auc"]
        insertion = deletion_insertion(model, images, maps, class_ids, mode="insertion", steps=args.steps,
                                       score="sigmoid", batch_size=64, blur_sigma=args.blur_sigma)["auc"]
        rows.append((name, float(accuracy), float(deletion.mean()), float(insertion.mean()), seconds))
        print(f"{name}: pointing {100 * float(accuracy):.1f}%, deletion {float(deletion.mean()):.3f}, "
              f"insertion {float(insertion.mean()):.3f}, {seconds:.1f} s "
              f"(with metrics {time.perf_counter() - start:.1f} s)", flush=True)

    print()
    print(f"{args.num_images} images (seed {args.seed}), {len(pairs)} (image, class) pairs; "
          f"RISE {args.num_masks} masks; extremal perturbation {args.max_iter} iterations, areas {args.areas}; "
          f"deletion/insertion {args.steps} steps, sigmoid probability, insertion from a blur of sigma "
          f"{args.blur_sigma:g} px; torch {torch.__version__}, "
          f"{args.threads} threads, {platform.processor() or platform.machine()}")
    print()
    print("| method | pointing game (%) ↑ | deletion AUC ↓ | insertion AUC ↑ | time (s) | ms / pair |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, accuracy, deletion, insertion, seconds in rows:
        print(f"| {LABELS[name]} | {100 * accuracy:.1f} | {deletion:.3f} | {insertion:.3f} | {seconds:.1f} | "
              f"{1000 * seconds / len(pairs):.1f} |")


if __name__ == "__main__":
    main()

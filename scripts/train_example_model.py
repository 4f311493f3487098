"""Train xaifast's embedded example model and write its weights into the package.

    python scripts/train_example_model.py            # ~4-5 min on 2 shared CPU cores

Trains :class:`xaifast.benchmark.models.ExampleNet` on
:class:`xaifast.benchmark.datasets.SyntheticShapes` (multi-label: one binary cross-entropy per
class), checks it on a held-out set and on the example image, and writes
``xaifast/benchmark/data/example_model.pt`` (a float32 state_dict with the class names and the
run's numbers, about 0.4 MB).

Reproducible: the images depend only on their seeds, the weights are initialised and the batches
shuffled from ``--seed``, and deterministic algorithms are on; with the same torch build and
``--threads`` a rerun gives the same file.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from xaifast.benchmark.datasets import CLASSES, NUM_CLASSES, SyntheticShapes, example_image  # noqa: E402
from xaifast.benchmark.models import WEIGHTS_PATH, ExampleNet  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-images", type=int, default=6000, help="training images (default 6000)")
    parser.add_argument("--val-images", type=int, default=600, help="held-out images (default 600)")
    parser.add_argument("--epochs", type=int, default=5, help="passes over the training images (default 5)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--seed", type=int, default=0, help="initialisation and shuffling seed")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: on a shared 2-core machine 2 threads can be 4x slower)")
    parser.add_argument("--output", default=WEIGHTS_PATH, help=f"weights file (default {WEIGHTS_PATH})")
    return parser.parse_args(argv)


def render(dataset, what):
    """All items of ``dataset`` as ``(images float16, labels)``: drawing them once is the slow part."""
    start = time.perf_counter()
    images = torch.empty((len(dataset), 3, *dataset.size), dtype=torch.float16)
    labels = torch.empty((len(dataset), NUM_CLASSES))
    for i in range(len(dataset)):
        images[i], labels[i] = dataset[i]
    print(f"drew {len(dataset)} {what} images in {time.perf_counter() - start:.0f} s", flush=True)
    return images, labels


def augment(images, generator):
    """One of the 8 flips/quarter turns for the whole batch: the classes do not change under them."""
    k = int(torch.randint(4, (), generator=generator))
    images = torch.rot90(images, k, dims=(2, 3))
    if bool(torch.randint(2, (), generator=generator)):
        images = torch.flip(images, dims=(3,))
    return images.contiguous()


def average_precision(scores, labels):
    """Mean over classes of the average precision (area under the precision-recall steps)."""
    aps = []
    for c in range(labels.shape[1]):
        order = torch.argsort(scores[:, c], descending=True, stable=True)
        hits = labels[order, c]
        if hits.sum() == 0:
            continue
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return sum(aps) / len(aps)


@torch.no_grad()
def evaluate(model, images, labels, batch_size=100):
    model.eval()
    scores = torch.cat([model(images[i:i + batch_size].float()) for i in range(0, len(images), batch_size)])
    predicted = (scores > 0).float()
    return {
        "label_accuracy": float((predicted == labels).float().mean()),
        "exact_match": float((predicted == labels).all(1).float().mean()),
        "mean_ap": average_precision(scores, labels),
        "loss": float(F.binary_cross_entropy_with_logits(scores, labels)),
    }


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)  # initialisation of the layers
    start = time.perf_counter()

    train_images, train_labels = render(SyntheticShapes(args.train_images, seed=0), "training")
    val_images, val_labels = render(SyntheticShapes(args.val_images, seed=1), "held-out")

    model = ExampleNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(train_images) // args.batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, epochs=args.epochs,
                                                   steps_per_epoch=steps_per_epoch, pct_start=0.2)
    generator = torch.Generator().manual_seed(args.seed)
    train_start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train_images), generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * args.batch_size:(step + 1) * args.batch_size]
            images = augment(train_images[batch].float(), generator)
            loss = F.binary_cross_entropy_with_logits(model(images), train_labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
        val = evaluate(model, val_images, val_labels)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {total / steps_per_epoch:.4f}, held-out loss "
              f"{val['loss']:.4f}, label accuracy {val['label_accuracy']:.4f}, exact match "
              f"{val['exact_match']:.4f}, mean AP {val['mean_ap']:.4f} "
              f"({time.perf_counter() - train_start:.0f} s)", flush=True)
    train_seconds = time.perf_counter() - train_start

    train = evaluate(model, train_images[:len(val_images)], train_labels[:len(val_images)])
    val = evaluate(model, val_images, val_labels)
    x, c1, c2, _ = example_image()
    with torch.no_grad():
        logits = model.eval()(x)[0]
    top2 = set(logits.topk(2).indices.tolist())
    print(f"final: train label accuracy {train['label_accuracy']:.4f} mean AP {train['mean_ap']:.4f}; "
          f"held-out label accuracy {val['label_accuracy']:.4f} exact match {val['exact_match']:.4f} "
          f"mean AP {val['mean_ap']:.4f}")
    print(f"example image logits: " + ", ".join(f"{CLASSES[c]} {float(v):+.2f}" for c, v in enumerate(logits)))
    if top2 != {c1, c2}:
        print(f"WARNING: the example image's top-2 classes are {sorted(top2)}, not {{{c1}, {c2}}}")

    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    state = {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
    torch.save({
        "state_dict": state,
        "classes": CLASSES,
        "train_label_accuracy": train["label_accuracy"],
        "heldout_label_accuracy": val["label_accuracy"],
        "heldout_exact_match": val["exact_match"],
        "heldout_mean_ap": val["mean_ap"],
        "command": "python scripts/train_example_model.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "torch_version": str(torch.__version__),
    }, args.output)
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.2f} MB); training took "
          f"{train_seconds:.0f} s, {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()

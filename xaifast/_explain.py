"""``xaifast explain IMAGES... --method NAME --out DIR``: saliency maps for image files, batched and resumable.

For every image ``NAME`` (its path relative to the deepest folder holding all the inputs) and
method ``M`` it writes ``DIR/NAME.M.png`` (the heatmap over the image, at the image's own size)
and ``DIR/NAME.M.npy`` (or ``.pt``: the raw ``(H, W)`` float32 map at the model's input size);
an explicit ``--target C`` adds the class: ``DIR/NAME.M.C.png``. Each file is written under a
temporary name and renamed, so an image whose outputs all exist is finished and a rerun skips it.
Under torchrun, rank 0 lists the work and every rank takes ``pending[rank::world_size]``.
"""

import os
import sys
import time

import numpy as np
import torch

from . import _distributed
from ._atomic import atomic_open, remove_stale
from ._cli_inputs import UsageError, collect_images, resolve_targets
from ._progress import progress

__all__ = ["run", "emit"]


def emit(bar, line, stream):
    """Print a line while ``bar`` (tqdm, the plain counter or none) may be showing."""
    if hasattr(bar, "write"):
        bar.write(line, file=stream)  # tqdm: print above the bar, not through it
    else:
        print(line, file=stream, flush=True)  # one write per line: ranks sharing a console do not interleave


class _Job:
    """One image and the files it becomes."""

    def __init__(self, path, name, out, method, targets, raw_format):
        self.path = path
        self.name = name
        # `top` (targets None): one pair of files without a class; explicit classes: one pair per class.
        labels = [None] if targets is None else list(targets)
        self.outputs = []
        for label in labels:
            stem = os.path.join(out, *name.split("/")) + f".{method}" + ("" if label is None else f".{label}")
            self.outputs.append((label, stem + ".png", stem + "." + raw_format))

    def finished(self):
        return all(os.path.isfile(png) and os.path.isfile(raw) for _, png, raw in self.outputs)


def _read_image(path):
    from PIL import Image, ImageOps

    with Image.open(path) as source:
        source.load()
        # Phone photos store their orientation in EXIF: show and explain them the right way up.
        return ImageOps.exif_transpose(source).convert("RGB")


def _model_input(image, size, mean, std):
    from PIL import Image

    resized = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (pixels - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def _save_png(picture, path, job, label, method):
    from PIL.PngImagePlugin import PngInfo

    facts = PngInfo()
    facts.add_text("xaifast:method", method)
    facts.add_text("xaifast:source", job.name)
    facts.add_text("xaifast:target", str(label))
    remove_stale(path)
    with atomic_open(path) as stream:
        picture.save(stream, format="PNG", pnginfo=facts)


def _save_raw(saliency, path):
    remove_stale(path)
    with atomic_open(path) as stream:
        if path.endswith(".pt"):
            torch.save(saliency.clone(), stream)  # clone: a view would save the whole batch's storage
        else:
            np.save(stream, saliency.numpy())


class _Run:
    def __init__(self, args, group, device, model, classes, explain):
        self.args, self.group, self.device = args, group, device
        self.model, self.classes, self.explain = model, classes, explain
        self.done, self.failed = 0, []
        self.bar = None  # the progress bar, if any: messages go around it

    def say(self, line):
        if self.args.verbose:
            emit(self.bar, (f"[rank {self.group.rank}] " if self.group.distributed else "") + line, sys.stdout)

    def fail(self, job, reason):
        rank = f" [rank {self.group.rank}]" if self.group.distributed else ""
        emit(self.bar, f"xaifast explain: skipped {job.path}{rank}: {reason}", sys.stderr)
        self.failed.append(job.name)

    def class_name(self, label):
        if self.classes is not None and 0 <= label < len(self.classes):
            return f"{label} ({self.classes[label]})"
        return str(label)

    def batch(self, jobs, targets):
        from .overlay import overlay

        args = self.args
        loaded = []
        for job in jobs:
            try:
                image = _read_image(job.path)
            except Exception as err:  # Pillow raises many kinds on corrupt files
                self.fail(job, f"cannot read the image ({type(err).__name__}: {err})")
                continue
            loaded.append((job, image))
        if not loaded:
            return
        x = torch.stack([_model_input(image, args.size, args.mean, args.std) for _, image in loaded])
        x = x.to(self.device)
        try:
            if targets is None:
                with torch.no_grad():
                    labels = [[int(c)] for c in self.model(x).argmax(dim=1).tolist()]
            else:
                labels = [list(targets)] * len(loaded)
            # Several classes: the image repeats, one copy per class (one target per image).
            repeats = torch.tensor([len(row) for row in labels], device=x.device)
            flat = [label for row in labels for label in row]
            saliency = self.explain(args.method, self.model, x.repeat_interleave(repeats, dim=0), flat,
                                    layers=args.layers, **args.options)
            saliency = saliency.detach().to("cpu", torch.float32)
        except Exception as err:
            for job, _ in loaded:
                self.fail(job, f"{args.method} failed ({type(err).__name__}: {err})")
            return
        first = 0
        for (job, image), classes in zip(loaded, labels):
            rows = range(first, first + len(classes))
            first += len(classes)
            try:
                for (_, png, raw), label, row in zip(job.outputs, classes, rows):
                    if not torch.isfinite(saliency[row, 0]).all():
                        raise ValueError(f"the {args.method} map for class {label} has NaN or infinite values")
                    picture = overlay(saliency[row, 0], image, cmap=args.cmap, image_weight=args.image_weight)
                    os.makedirs(os.path.dirname(png), exist_ok=True)
                    _save_raw(saliency[row, 0], raw)
                    _save_png(picture, png, job, label, args.method)
                    self.say(f"done {job.name}: class {self.class_name(label)} -> {os.path.relpath(png, args.out)}")
            except ValueError as err:
                self.fail(job, str(err))
                continue
            except OSError as err:
                self.fail(job, f"cannot write its outputs ({err})")
                continue
            self.done += 1


def _plan(args, targets):
    """Rank 0's view of the work: ``(pending jobs, skipped, ignored)``, or a :class:`UsageError`."""
    try:
        images, ignored = collect_images(args.inputs, exclude=args.out)
        if not images:
            raise UsageError("IMAGES", "no image files found in " + ", ".join(map(repr, args.inputs)))
        os.makedirs(args.out, exist_ok=True)
    except UsageError as err:
        return err
    except OSError as err:
        return UsageError("--out", f"cannot create {args.out!r}: {err}")
    jobs = [_Job(path, name, args.out, args.method, targets, args.format) for path, name in images]
    pending = [job for job in jobs if args.overwrite or not job.finished()]
    return pending, len(jobs) - len(pending), ignored


def _probe(model, args, device):
    """The number of classes, from one forward pass on a blank image: a broken model fails here, early."""
    try:
        with torch.no_grad():
            logits = model(torch.zeros(1, 3, *args.size, device=device))
    except Exception as err:
        raise UsageError("--model", f"the model fails on a (1, 3, {args.size[0]}, {args.size[1]}) input "
                         f"({type(err).__name__}: {err})") from None
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        raise UsageError("--model", "the model must return (N, classes) scores, got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    return logits.shape[1]


def run(args, model, explain):
    """Explain every image of ``args.inputs`` with ``model``; returns the exit code (0 all done, 1 some failed).

    ``args`` holds the parsed command line (see :mod:`xaifast.cli`), with ``size``, ``mean``, ``std``,
    ``targets`` already parsed. Raises :class:`UsageError` for bad arguments.
    """
    started = time.perf_counter()
    group, device = _distributed.start(args.device)
    clean = False
    try:
        model = model.to(device)
        num_classes = _probe(model, args, device)
        classes = getattr(model, "classes", None)
        targets = resolve_targets(args.targets, num_classes, classes)
        plan = group.broadcast(_plan(args, targets) if group.is_main else None)
        if isinstance(plan, UsageError):
            raise plan
        pending, skipped, ignored = plan
        mine = group.share(pending)
        work = _Run(args, group, device, model, classes, explain)
        batches = [mine[start:start + args.batch_size] for start in range(0, len(mine), args.batch_size)]
        label = f"{args.method}" + (f" (rank 0 of {group.world_size})" if group.distributed else "")
        work.bar = progress(batches, total=len(batches), desc=label, enable=group.is_main and not args.quiet)
        for jobs in work.bar:
            work.batch(jobs, targets)
        done, failed = group.total((work.done, len(work.failed)))
        failed_names = [name for names in group.gather(work.failed) or [] for name in names or []]
        clean = True
    finally:
        group.close(wait=clean)
    if group.is_main:
        seconds = time.perf_counter() - started
        processes = f" on {group.world_size} processes" if group.world_size > 1 else ""
        notes = f", {ignored} non-image file{'s' * (ignored != 1)} ignored" if ignored else ""
        print(f"xaifast explain: {done} done, {skipped} skipped (already done), {failed} failed{notes} "
              f"in {seconds:.1f} s{processes}; outputs in {args.out}", flush=True)
        if failed_names:
            print("failed: " + ", ".join(sorted(failed_names)), flush=True)
    # Only rank 0 reports failure: torchrun stops the other ranks as soon as one exits non-zero, and
    # rank 0 has its summary to print first.
    return 1 if failed and group.is_main else 0

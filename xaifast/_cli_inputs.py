"""What the ``demo`` and ``explain`` commands read from their arguments: image lists, models, targets.

Everything here raises :class:`UsageError` naming the argument, which the command line turns into
exit code 2 and a message like argparse's own.
"""

import importlib
import os
import sys
import warnings

import torch
from torch import nn

__all__ = ["UsageError", "TorchScriptModel", "TORCHSCRIPT_METHODS", "image_extensions", "collect_images", "load_model", "parse_targets",
           "parse_size", "parse_floats", "parse_device", "resolve_targets"]

# ImageNet statistics (torchvision, TorchRay): the embedded example model was trained with them too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UsageError(ValueError):
    """A bad command-line argument: ``argument`` is its name as the user typed it."""

    def __init__(self, argument, message):
        super().__init__(f"argument {argument}: {message}")
        self.argument = argument


def image_extensions():
    """File name endings (lower case, with the dot) of the formats Pillow can read."""
    from PIL import Image

    Image.init()
    return frozenset(ext for ext, kind in Image.registered_extensions().items() if kind in Image.OPEN)


def _hidden(name):
    return name.startswith(".")


def collect_images(inputs, exclude=None):
    """The image files named by ``inputs`` (files and folders), sorted, with names relative to their common folder.

    Folders are searched recursively; inside them only files with an image extension count (hidden
    files and folders, and the ``exclude`` folder, e.g. the output folder, are left out). A file named
    on the command line always counts, whatever its extension. Duplicates count once.

    Args:
        inputs (list of str): files and folders.
        exclude (str, optional): a folder never searched.

    Returns:
        tuple: ``(images, ignored)``: ``images`` a list of ``(path, name)`` sorted by ``name``, ``name``
        the path relative to the deepest folder holding every input (``a/cat.jpg``, never ``..``);
        ``ignored`` the number of non-image files met in folders.

    Raises:
        UsageError: an input does not exist.
    """
    extensions = image_extensions()
    exclude = os.path.abspath(exclude) if exclude else None
    files, anchors, ignored = [], [], 0
    for item in inputs:
        path = os.path.abspath(item)
        if os.path.isdir(path):
            anchors.append(path)
            for folder, subfolders, names in os.walk(path):
                subfolders[:] = sorted(d for d in subfolders if not _hidden(d)
                                       and os.path.join(folder, d) != exclude)
                for name in names:
                    if _hidden(name):
                        continue
                    if os.path.splitext(name)[1].lower() in extensions:
                        files.append(os.path.join(folder, name))
                    else:
                        ignored += 1
        elif os.path.isfile(path):
            anchors.append(os.path.dirname(path))
            files.append(path)
        else:
            raise UsageError("IMAGES", f"{item!r} is neither a file nor a folder")
    if not files:
        return [], ignored
    root = os.path.commonpath(anchors)
    unique = {path: os.path.relpath(path, root).replace(os.sep, "/") for path in files}
    return sorted(((path, name) for path, name in unique.items()), key=lambda item: item[1]), ignored


def parse_size(text):
    """``'224'`` -> ``(224, 224)``; ``'240x320'`` -> ``(240, 320)`` (height x width)."""
    try:
        sides = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        sides = ()
    if len(sides) == 1:
        sides = sides * 2
    if len(sides) != 2 or min(sides) < 1:
        raise UsageError("--size", f"expected a side such as 224 or HxW such as 240x320, got {text!r}")
    return sides


def parse_floats(text, argument, count=3):
    """``'0.5,0.5,0.5'`` (or one number, repeated) -> a tuple of ``count`` floats."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise UsageError(argument, f"expected {count} comma-separated numbers (or one), got {text!r}")
    return values


def parse_device(text):
    """A torch device string that exists on this machine."""
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise UsageError("--device", f"{text!r} is not a device: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device", f"{text!r}: CUDA is not available on this machine")
    return str(device)


def parse_targets(text):
    """``--target``: ``'top'`` -> ``None`` (the predicted class); else a list of ints or class names."""
    if text.strip().lower() == "top":
        return None
    targets = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UsageError("--target", f"expected 'top', a class index or name, or a comma-separated list, "
                             f"got {text!r}")
        targets.append(int(part) if part.lstrip("-").isdigit() else part)
    if len(set(targets)) != len(targets):
        raise UsageError("--target", f"a class is listed twice in {text!r}")
    return targets


def resolve_targets(targets, num_classes, classes):
    """Check class indices against the model's ``num_classes`` outputs and turn class names into indices."""
    if targets is None:
        return None
    resolved = []
    for target in targets:
        if isinstance(target, str):
            if classes is None or target not in classes:
                known = f"; the model's classes are {', '.join(map(repr, classes))}" if classes else \
                    "; this model has no class names (model.classes), use indices"
                raise UsageError("--target", f"unknown class {target!r}{known}")
            target = list(classes).index(target)
        if not 0 <= target < num_classes:
            raise UsageError("--target", f"class {target} is out of range: the model has {num_classes} outputs")
        resolved.append(target)
    return resolved


def _from_callable(spec):
    module_name, _, attribute = spec.partition(":")
    try:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())  # like `python -m`: modules beside the user are importable
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise UsageError("--model", f"cannot import {spec!r}: {err}") from None
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise UsageError("--model", f"{spec!r} is neither an nn.Module nor a callable returning one")
    return obj()


# Methods that only differentiate through the model or run it: the others hook its layers or
# patch ReLU/convolution calls, which compiled TorchScript code bypasses (silently, for the rules).
TORCHSCRIPT_METHODS = ("gradient", "rise", "extremal_perturbation", "center")


class TorchScriptModel(nn.Module):
    """A TorchScript module in a Python one, so the input-level methods can hook its input."""

    def __init__(self, scripted):
        super().__init__()
        self.scripted = scripted

    def forward(self, x):
        return self.scripted(x)


def _from_file(path):
    try:
        with warnings.catch_warnings():
            # torch.jit is deprecated but works; a torch.save file is tried next, so no warning either way.
            warnings.simplefilter("ignore", DeprecationWarning)
            return TorchScriptModel(torch.jit.load(path, map_location="cpu"))
    except (RuntimeError, ValueError):
        pass  # not TorchScript: a torch.save file
    try:
        # weights_only=False unpickles arbitrary objects, which can run code: load only files you trust.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # unpickling raises anything the pickled classes raise
        raise UsageError("--model", f"{path!r} is neither a TorchScript file nor a torch.save file: {err}") from None


def load_model(spec):
    """Build the model named by ``--model``, in eval mode with frozen parameters.

    Args:
        spec (str): ``'example'`` (the embedded example model), ``'package.module:callable'``
            (called with no arguments; an ``nn.Module`` attribute is used as is), or a file:
            TorchScript (``torch.jit.save``) or a whole ``nn.Module`` saved with ``torch.save``.

    Returns:
        nn.Module: on the CPU.

    Raises:
        UsageError: the spec names nothing loadable, or not an ``nn.Module``.
    """
    if spec == "example":
        from .benchmark.models import get_example_model

        model = get_example_model()
    elif os.path.isfile(spec):
        model = _from_file(spec)
    elif ":" in spec:
        try:
            model = _from_callable(spec)
        except UsageError:
            raise
        except Exception as err:  # the user's factory failed
            raise UsageError("--model", f"{spec!r} raised {type(err).__name__}: {err}") from None
    else:
        raise UsageError("--model", f"{spec!r} is not 'example', an existing file or 'package.module:callable'")
    if isinstance(model, dict):
        raise UsageError("--model", f"{spec!r} holds a dict (a state_dict?), not a model: save the module itself, "
                         "or give 'package.module:callable' building it and loading the weights")
    if not isinstance(model, nn.Module):
        raise UsageError("--model", f"{spec!r} gives a {type(model).__name__}, not a torch.nn.Module")
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model

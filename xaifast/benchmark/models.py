"""The embedded example model: a small VGG-like CNN trained on :mod:`xaifast.benchmark.datasets`.

:class:`ExampleNet` is laid out like torchvision's VGG (``features``, a global pooling,
``classifier``), so its layer names read like the ones TorchRay's examples use on VGG16:

======================  ==================  ==============  =====================================
role                    ExampleNet          VGG16           output at 224 x 224
======================  ==================  ==============  =====================================
Grad-CAM, linear approx ``features.9``      ``features.29`` ``(N, 128, 14, 14)``, last conv ReLU
EBP saliency layer      ``features.3``      ``features.9``  ``(N, 32, 56, 56)``
contrastive EBP layer   ``features.10``     ``features.30`` ``(N, 128, 7, 7)``, last max-pool
classifier layer        ``classifier.1``    ``classifier.6`` ``(N, NUM_CLASSES)`` logits
======================  ==================  ==============  =====================================

Every instance carries these names in ``model.xaifast_layers``. A stride-4 first convolution
keeps it cheap (about 1 ms per 224 x 224 image on two CPU threads, 100 k parameters). A global
max-pooling and a single linear layer make each logit a weighted sum of where each feature is
strongest (CAM-like): the model takes images of any size of at least 32 pixels, and on the
example image gradient, guided backprop, Grad-CAM, linear approximation, (contrastive) excitation
backprop, RISE and extremal perturbation all peak inside the object of the class they explain.

The weights in ``xaifast/benchmark/data/example_model.pt`` come from
``python scripts/train_example_model.py`` (multi-label, one logit per class of
:data:`~xaifast.benchmark.datasets.CLASSES`; a class is predicted present when its logit is > 0).

Example::

    from xaifast.benchmark.models import get_example_model
    model = get_example_model()                 # eval mode, weights loaded
    model.xaifast_layers["grad_cam"]            # 'features.9'
"""

import os

import torch
from torch import nn

from .datasets import CLASSES, NUM_CLASSES

__all__ = ["ExampleNet", "EXAMPLE_LAYERS", "WEIGHTS_PATH", "get_example_model", "get_model"]

# Where the trained weights ship: package data (see [tool.setuptools.package-data]).
WEIGHTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "example_model.pt")

# The layers TorchRay's examples name on VGG16, in ExampleNet.
EXAMPLE_LAYERS = {
    "grad_cam": "features.9",
    "saliency_layer": "features.3",
    "contrast_layer": "features.10",
    "classifier_layer": "classifier.1",
}


class ExampleNet(nn.Module):
    """A small VGG-like multi-label classifier for the synthetic shapes.

    Args:
        num_classes (int): number of output logits. Default: :data:`NUM_CLASSES`.

    Shape:
        input ``(N, 3, H, W)`` normalised images (``H, W >= 32``), output ``(N, num_classes)`` logits.

    Example:
        >>> model = ExampleNet().eval()
        >>> model(torch.zeros(2, 3, 224, 224)).shape
        torch.Size([2, 8])
    """

    def __init__(self, num_classes=NUM_CLASSES):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=8, stride=4, padding=2),  # 0: 224 -> 56
            nn.ReLU(),                                             # 1
            nn.Conv2d(16, 32, kernel_size=3, padding=1),           # 2
            nn.ReLU(),                                             # 3: EBP saliency layer, 56 x 56
            nn.MaxPool2d(2),                                       # 4: 28
            nn.Conv2d(32, 64, kernel_size=3, padding=1),           # 5
            nn.ReLU(),                                             # 6
            nn.MaxPool2d(2),                                       # 7: 14
            nn.Conv2d(64, 128, kernel_size=3, padding=1),          # 8
            nn.ReLU(),                                             # 9: Grad-CAM layer, 14 x 14
            nn.MaxPool2d(2),                                       # 10: contrast layer, 7 x 7
        )
        # Global max-pooling: "is there an object of class c anywhere", whatever its place and size.
        self.pool = nn.AdaptiveMaxPool2d(1)
        # One linear layer (dropout only in training): with a hidden layer, excitation backprop
        # spread onto the other objects.
        self.classifier = nn.Sequential(
            nn.Dropout(0.2),                                       # 0
            nn.Linear(128, num_classes),                           # 1: classifier layer
        )
        self.xaifast_layers = dict(EXAMPLE_LAYERS)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def get_example_model(pretrained=True):
    """The embedded example model, in evaluation mode.

    Args:
        pretrained (bool): load the trained weights shipped with xaifast
            (``xaifast/benchmark/data/example_model.pt``); ``False`` gives random weights.
            Default: ``True``.

    Returns:
        ExampleNet: on the CPU, in eval mode, with ``xaifast_layers`` naming the layers to explain
        and ``classes`` the class names (:data:`~xaifast.benchmark.datasets.CLASSES`).

    Raises:
        FileNotFoundError: ``pretrained`` and the weights file is missing (re-create it with
            ``python scripts/train_example_model.py``).

    Example:
        >>> from xaifast.benchmark.datasets import example_image
        >>> x, c1, c2, _ = example_image()
        >>> model = get_example_model()
        >>> set(model(x).topk(2).indices[0].tolist()) == {c1, c2}
        True
    """
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be a bool, got {type(pretrained).__name__}")
    model = ExampleNet()
    if pretrained:
        if not os.path.exists(WEIGHTS_PATH):
            raise FileNotFoundError(f"the example model's weights are missing ({WEIGHTS_PATH}); "
                                    "re-create them with `python scripts/train_example_model.py`")
        checkpoint = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
        if tuple(checkpoint.get("classes", CLASSES)) != CLASSES:
            raise RuntimeError(f"{WEIGHTS_PATH} was trained for classes {checkpoint['classes']}, "
                               f"not {CLASSES}: re-train with `python scripts/train_example_model.py`")
        # Stored as float32 or float16: load_state_dict copies into the float32 parameters.
        model.load_state_dict(checkpoint["state_dict"])
    model.classes = CLASSES
    return model.eval()


def get_model(arch="example", pretrained=True):
    """A reference model by architecture name: only the embedded ``'example'`` one here.

    TorchRay's ``get_model`` builds torchvision models fine-tuned on VOC/COCO (downloaded); xaifast
    ships only the embedded model and never downloads.

    Args:
        arch (str): ``'example'``. Default: ``'example'``.
        pretrained (bool): see :func:`get_example_model`. Default: ``True``.

    Returns:
        ExampleNet: in eval mode.

    Example:
        >>> get_model().xaifast_layers['classifier_layer']
        'classifier.1'
    """
    if not isinstance(arch, str):
        raise TypeError(f"arch must be a str, got {type(arch).__name__}")
    if arch != "example":
        raise ValueError(f"arch must be 'example' (the embedded model), got {arch!r}")
    return get_example_model(pretrained=pretrained)

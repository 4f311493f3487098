"""Synthetic "coloured shapes" images: the data of xaifast's embedded example model.

Each image holds one to three objects of different classes (a coloured shape each: a red disc, a
blue square, ...) at random, non-overlapping places on a textured, noisy background. The pixels
every object covers are known exactly, so the masks serve as ground truth for the pointing game
and for checking that an attribution method points at the object it explains.

Everything is drawn from a private :class:`torch.Generator` seeded from ``(seed, index)``: the
same seed gives the same images on every run and machine, image ``i`` does not depend on how many
images are asked for, and the global random state is never touched.

Images come normalised like ImageNet inputs (``(x - MEAN) / STD`` per channel, with TorchRay's
and torchvision's :data:`MEAN` and :data:`STD`), so the same plotting and attribution code serves
the embedded model and a torchvision one.

Example::

    from xaifast.benchmark.datasets import CLASSES, make_example_set
    data = make_example_set(4, seed=0)
    data.images.shape                 # torch.Size([4, 3, 224, 224])
    [CLASSES[c] for c, _ in data.objects[0]]
"""

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..ops._checks import check_int

__all__ = ["CLASSES", "NUM_CLASSES", "MEAN", "STD", "MIN_SIZE", "ExampleSet", "SyntheticShapes",
           "make_example_set", "example_image", "normalize", "denormalize"]

# The classes: a shape and a colour each. Colours are distinct, so is every shape.
CLASSES = ("red disc", "blue square", "green triangle", "yellow cross", "magenta ring", "cyan bar",
           "orange star", "white frame")
NUM_CLASSES = len(CLASSES)

# ImageNet normalisation (torchvision's and TorchRay's), applied to the [0, 1] images.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# Smallest image side: objects are 14%-27% of the shorter side, 64 px gives objects of 9-17 px.
MIN_SIZE = 64

_COLOURS = torch.tensor([
    [0.90, 0.10, 0.10],  # red
    [0.15, 0.25, 0.95],  # blue
    [0.10, 0.75, 0.15],  # green
    [0.95, 0.90, 0.10],  # yellow
    [0.90, 0.10, 0.85],  # magenta
    [0.10, 0.85, 0.90],  # cyan
    [1.00, 0.55, 0.00],  # orange
    [0.97, 0.97, 0.97],  # white
])

# Object extent (side or diameter) as a fraction of the shorter image side: 31-60 px at 224.
_MIN_EXTENT, _MAX_EXTENT = 0.14, 0.27
# Free pixels kept between two objects' bounding circles, as a fraction of the shorter side.
_GAP = 0.03
# Farthest point of any shape from its centre, in radii: the corner of the square (0.8 * sqrt(2)).
_REACH = 1.14


@dataclass
class ExampleSet:
    """A batch of synthetic images with their labels and object masks.

    Attributes:
        images (Tensor): ``(N, 3, H, W)`` float32, normalised with :data:`MEAN` and :data:`STD`.
        labels (Tensor): ``(N, NUM_CLASSES)`` float32 multi-hot: ``labels[n, c] = 1`` when image
            ``n`` holds an object of class ``c``.
        objects (list): per image, a list of ``(class_id, mask)`` pairs, ``mask`` a ``(H, W)`` bool
            tensor of the pixels the object covers; one entry per object, left to right in the
            order they were drawn.
    """
    images: torch.Tensor
    labels: torch.Tensor
    objects: list

    def __len__(self):
        return self.images.shape[0]


def _check_size(size, name="size"):
    """``size`` (int or ``(H, W)``) -> ``(H, W)`` ints, each at least :data:`MIN_SIZE`."""
    if isinstance(size, (tuple, list)) and len(size) == 2:
        height, width = size
    else:
        height = width = size
    for side in (height, width):
        if isinstance(side, bool) or not isinstance(side, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints (H, W), got {size!r}")
        if side < MIN_SIZE:
            raise ValueError(f"{name} must be at least {MIN_SIZE} pixels, got {size!r}")
    return int(height), int(width)


def _generator(seed, index):
    """A fresh generator for image ``index`` of the set ``seed``: images are independent draws."""
    # 0x9E3779B97F4A7C15 (the golden-ratio constant) spreads consecutive seeds far apart.
    return torch.Generator().manual_seed((seed * 0x9E3779B97F4A7C15 + index * 0x632BE59BD9B4E019 + 1) % 2**63)


def _uniform(generator, low, high, shape=()):
    return low + (high - low) * torch.rand(shape, generator=generator)


def normalize(images):
    """``[0, 1]`` RGB images -> model inputs: ``(x - MEAN) / STD`` per channel.

    Args:
        images (Tensor): ``(N, 3, H, W)`` or ``(3, H, W)``.

    Returns:
        Tensor: same shape and dtype.

    Example:
        >>> normalize(torch.ones(3, 1, 1)).flatten()
        tensor([2.2489, 2.4286, 2.6400])
    """
    mean = torch.tensor(MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images - mean) / std


def denormalize(images):
    """Model inputs -> ``[0, 1]`` RGB images: the inverse of :func:`normalize`, clamped to ``[0, 1]``.

    Args:
        images (Tensor): ``(N, 3, H, W)`` or ``(3, H, W)``.

    Returns:
        Tensor: same shape and dtype, in ``[0, 1]``.

    Example:
        >>> denormalize(normalize(torch.full((3, 2, 2), 0.5))).flatten()[0].item()
        0.5
    """
    mean = torch.tensor(MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)


def _background(generator, height, width):
    """A ``(3, H, W)`` textured background in about ``[0.1, 0.8]``, less saturated than the objects."""
    def smooth_noise(cells_y, cells_x, amplitude):
        grid = torch.rand((1, 3, cells_y, cells_x), generator=generator)
        return amplitude * F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=False)[0]

    # Large blotches of colour, a finer texture on top; pulled towards grey so objects stand out.
    base = 0.15 + smooth_noise(4, 4, 0.55) + smooth_noise(max(2, height // 12), max(2, width // 12), 0.2)
    grey = base.mean(0, keepdim=True)
    return 0.45 * base + 0.55 * grey


def _shape_mask(class_id, u, v, radius):
    """Boolean mask of class ``class_id``'s shape; ``(u, v)`` are rotated, centred pixel coordinates."""
    r = torch.sqrt(u * u + v * v)
    if class_id == 0:  # disc
        return r <= radius
    if class_id == 1:  # square (side = 1.6 radius)
        return torch.maximum(u.abs(), v.abs()) <= 0.8 * radius
    if class_id == 2:  # equilateral triangle inscribed in the circle of the radius
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):
            angle = math.pi / 2 + 2 * math.pi * k / 3
            inside &= u * math.cos(angle) + v * math.sin(angle) <= 0.5 * radius
        return inside
    if class_id == 3:  # cross (plus sign), arms 0.3 radius thick each side
        arm = 0.3 * radius
        return ((u.abs() <= arm) & (v.abs() <= radius)) | ((v.abs() <= arm) & (u.abs() <= radius))
    if class_id == 4:  # ring
        return (r <= radius) & (r >= 0.55 * radius)
    if class_id == 5:  # bar: 2 x 0.7 radius
        return (u.abs() <= radius) & (v.abs() <= 0.35 * radius)
    if class_id == 6:  # five-pointed star: radius varies with the angle
        theta = torch.atan2(v, u)
        return r <= radius * (0.55 + 0.45 * torch.cos(5 * theta))
    if class_id == 7:  # square frame
        side = torch.maximum(u.abs(), v.abs())
        return (side <= 0.8 * radius) & (side >= 0.45 * radius)
    raise AssertionError(class_id)


def _draw_object(image, generator, class_id, centre, radius, angle):
    """Paint one object onto ``image`` (in place); return its ``(H, W)`` bool mask."""
    _, height, width = image.shape
    # Work in the object's bounding box only: small tensors, no thread pool (fast even on a busy CPU).
    reach = _REACH * radius + 1
    top, bottom = max(0, math.floor(centre[0] - reach)), min(height, math.ceil(centre[0] + reach))
    left, right = max(0, math.floor(centre[1] - reach)), min(width, math.ceil(centre[1] + reach))
    ys = torch.arange(top, bottom, dtype=torch.float32).view(-1, 1) + 0.5 - centre[0]
    xs = torch.arange(left, right, dtype=torch.float32).view(1, -1) + 0.5 - centre[1]
    cos, sin = math.cos(angle), math.sin(angle)
    u = xs * cos + ys * sin
    v = -xs * sin + ys * cos
    box = _shape_mask(class_id, u, v, radius)
    # Colour jitter: brightness and a little per-channel shift, so colour is a cue, not a constant.
    colour = _COLOURS[class_id] * _uniform(generator, 0.85, 1.05) + _uniform(generator, -0.05, 0.05, (3,))
    image[:, top:bottom, left:right][:, box] = colour.clamp(0, 1).view(3, 1)
    mask = torch.zeros((height, width), dtype=torch.bool)
    mask[top:bottom, left:right] = box
    return mask


def _place(generator, radii, height, width):
    """Centres for shapes of ``radii``, inside the image and ``_GAP`` apart; ``None`` where none fits."""
    gap = _GAP * min(height, width)
    reaches = [_REACH * radius for radius in radii]
    centres = []
    for reach in reaches:
        placed = None
        for _ in range(100):
            cy = float(_uniform(generator, reach + 1, height - reach - 1))
            cx = float(_uniform(generator, reach + 1, width - reach - 1))
            if all(other is None or math.hypot(cy - other[0], cx - other[1]) >= reach + other_reach + gap
                   for other, other_reach in zip(centres, reaches)):
                placed = (cy, cx)
                break
        centres.append(placed)
    return centres


def _finish(image, generator):
    """Pixel noise on the whole picture, clamp, normalise."""
    image = image + 0.04 * torch.randn(image.shape, generator=generator)
    return normalize(image.clamp_(0, 1))


def _render(generator, height, width, max_objects=3):
    """One random image: ``((3, H, W) normalised image, [(class_id, mask), ...])``."""
    image = _background(generator, height, width)
    num_objects = int(torch.randint(1, max_objects + 1, (), generator=generator))
    classes = torch.randperm(NUM_CLASSES, generator=generator)[:num_objects].tolist()
    short = min(height, width)
    radii = [0.5 * short * float(_uniform(generator, _MIN_EXTENT, _MAX_EXTENT)) for _ in classes]
    centres = _place(generator, radii, height, width)
    objects = []
    for class_id, radius, centre in zip(classes, radii, centres):
        angle = float(_uniform(generator, 0, 2 * math.pi))
        if centre is not None:
            objects.append((class_id, _draw_object(image, generator, class_id, centre, radius, angle)))
    return _finish(image, generator), objects


def _labels(objects):
    labels = torch.zeros(NUM_CLASSES)
    for class_id, _ in objects:
        labels[class_id] = 1
    return labels


class SyntheticShapes(torch.utils.data.Dataset):
    """A :class:`torch.utils.data.Dataset` of synthetic shape images, drawn lazily.

    Item ``i`` is ``(image, labels)``: a ``(3, H, W)`` float32 normalised image and its
    ``(NUM_CLASSES,)`` multi-hot float32 labels; it depends only on ``(seed, i)`` (never on the
    global random state), so any DataLoader order or worker count gives the same items.

    Args:
        num_images (int): number of images, at least 1.
        seed (int): which set; ``>= 0``. Default: ``0``.
        size (int or tuple of int): image side, or ``(H, W)``; at least :data:`MIN_SIZE`.
            Default: ``224``.

    Example:
        >>> data = SyntheticShapes(10, seed=1)
        >>> image, labels = data[3]
        >>> image.shape, labels.shape
        (torch.Size([3, 224, 224]), torch.Size([8]))
    """

    def __init__(self, num_images, seed=0, size=224):
        self.num_images = check_int("num_images", num_images, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.size = _check_size(size)

    def __len__(self):
        return self.num_images

    def sample(self, index):
        """Item ``index`` with its objects: ``(image, labels, [(class_id, (H, W) bool mask), ...])``."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index = int(index) % self.num_images
        image, objects = _render(_generator(self.seed, index), *self.size)
        return image, _labels(objects), objects

    def __getitem__(self, index):
        image, labels, _ = self.sample(index)
        return image, labels


def make_example_set(num_images, seed=0, size=224):
    """Draw ``num_images`` synthetic images with their labels and object masks.

    Image ``i`` equals ``SyntheticShapes(num_images, seed, size)[i]``. Each holds 1 to 3 objects
    of distinct classes, 14%-27% of the shorter side across (31-60 px at 224), that do not overlap.

    Args:
        num_images (int): number of images, at least 1.
        seed (int): which set; ``>= 0``. Default: ``0``.
        size (int or tuple of int): image side, or ``(H, W)``; at least :data:`MIN_SIZE`.
            Default: ``224``.

    Returns:
        ExampleSet: ``images`` ``(N, 3, H, W)`` float32 (normalised), ``labels``
        ``(N, NUM_CLASSES)`` multi-hot float32, ``objects`` a list per image of
        ``(class_id, (H, W) bool mask)``.

    Example:
        >>> data = make_example_set(2, seed=0, size=128)
        >>> data.images.shape, data.labels.shape
        (torch.Size([2, 3, 128, 128]), torch.Size([2, 8]))
        >>> all(data.labels[n, c] == 1 for n in range(2) for c, _ in data.objects[n])
        True
    """
    dataset = SyntheticShapes(num_images, seed, size)
    samples = [dataset.sample(i) for i in range(len(dataset))]
    return ExampleSet(images=torch.stack([s[0] for s in samples]),
                      labels=torch.stack([s[1] for s in samples]),
                      objects=[s[2] for s in samples])


# The example image: two objects of different classes, far apart (upper left, lower right).
EXAMPLE_CATEGORIES = (0, 6)        # red disc, orange star
_EXAMPLE_CENTRES = ((0.33, 0.28), (0.68, 0.72))   # (y, x) as fractions of (H, W)
_EXAMPLE_EXTENT = 0.25             # object extent as a fraction of the shorter side: 56 px at 224
_EXAMPLE_ANGLES = (0.0, 0.3)
_EXAMPLE_SEED = 7


def example_image(size=224):
    """The example image: two objects of different classes, clearly apart, on a textured background.

    The embedded counterpart of TorchRay's dog-and-cat picture: a red disc in the upper left and
    an orange star in the lower right (their class ids are returned, names in :data:`CLASSES`).

    Args:
        size (int or tuple of int): image side, or ``(H, W)``; at least :data:`MIN_SIZE`.
            Default: ``224``.

    Returns:
        tuple: ``(x, category_id_1, category_id_2, objects)``: ``x`` the ``(1, 3, H, W)`` float32
        normalised image, the two class ids (distinct ints), and ``objects`` the list of
        ``(class_id, (H, W) bool mask)`` for the two objects, in that order.

    Example:
        >>> x, c1, c2, objects = example_image()
        >>> x.shape, CLASSES[c1], CLASSES[c2]
        (torch.Size([1, 3, 224, 224]), 'red disc', 'orange star')
    """
    height, width = _check_size(size)
    generator = torch.Generator().manual_seed(_EXAMPLE_SEED)
    image = _background(generator, height, width)
    radius = 0.5 * _EXAMPLE_EXTENT * min(height, width)
    objects = []
    for class_id, (fy, fx), angle in zip(EXAMPLE_CATEGORIES, _EXAMPLE_CENTRES, _EXAMPLE_ANGLES):
        mask = _draw_object(image, generator, class_id, (fy * height, fx * width), radius, angle)
        objects.append((class_id, mask))
    x = _finish(image, generator)[None]
    return x, EXAMPLE_CATEGORIES[0], EXAMPLE_CATEGORIES[1], objects

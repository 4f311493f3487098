"""xaifast.benchmark's example data: the synthetic shapes, the embedded model, get_example_data, plot_example."""

import logging
import os
import sys
import tomllib

import pytest
import torch

from xaifast.attribution.grad_cam import grad_cam
from xaifast.benchmark import (CLASSES, NUM_CLASSES, ExampleNet, SyntheticShapes, example_image, get_example_data,
                               get_example_model, get_model, make_example_set, plot_example)
from xaifast.benchmark.models import WEIGHTS_PATH

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def example():
    """The embedded model (CPU) and the example image, with its object masks."""
    x, c1, c2, objects = example_image()
    return get_example_model(), x, c1, c2, objects


def distance_to_mask(mask, y, x):
    """Euclidean distance in pixels from (y, x) to the nearest pixel of a (H, W) bool mask."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    return float(torch.sqrt(((ys - y) ** 2 + (xs - x) ** 2).float()).min())


# ---- synthetic shapes ------------------------------------------------------------------------

def test_make_example_set_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = make_example_set(3, seed=5, size=96)
    b = make_example_set(3, seed=5, size=96)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    for objects_a, objects_b in zip(a.objects, b.objects):
        assert [c for c, _ in objects_a] == [c for c, _ in objects_b]
        assert all(torch.equal(ma, mb) for (_, ma), (_, mb) in zip(objects_a, objects_b))
    assert not torch.equal(make_example_set(3, seed=6, size=96).images, a.images)


def test_dataset_items_match_the_set_and_do_not_depend_on_its_length():
    data = make_example_set(4, seed=2, size=80)
    dataset = SyntheticShapes(4, seed=2, size=80)
    image, labels = dataset[3]
    assert torch.equal(image, data.images[3]) and torch.equal(labels, data.labels[3])
    assert torch.equal(SyntheticShapes(100, seed=2, size=80)[1][0], data.images[1])
    assert len(dataset) == 4
    with pytest.raises(IndexError):
        dataset[4]


def test_shapes_dtypes_and_masks_match_labels():
    data = make_example_set(6, seed=0, size=(96, 128))
    assert data.images.shape == (6, 3, 96, 128) and data.images.dtype == torch.float32
    assert data.labels.shape == (6, NUM_CLASSES) and data.labels.dtype == torch.float32
    assert set(data.labels.unique().tolist()) <= {0.0, 1.0}
    assert len(data.objects) == len(data) == 6
    for n, objects in enumerate(data.objects):
        classes = [c for c, _ in objects]
        assert 1 <= len(classes) <= 3 and len(set(classes)) == len(classes)
        assert sorted(classes) == torch.nonzero(data.labels[n]).flatten().tolist()
        covered = torch.zeros(96, 128, dtype=torch.int64)
        for _, mask in objects:
            assert mask.dtype == torch.bool and mask.shape == (96, 128) and mask.sum() > 20
            covered += mask
        assert covered.max() <= 1  # objects never overlap


def test_example_image_has_two_separate_objects_of_different_classes():
    x, c1, c2, objects = example_image()
    assert x.shape == (1, 3, 224, 224) and x.dtype == torch.float32
    assert c1 != c2 and [c for c, _ in objects] == [c1, c2]
    assert CLASSES[c1] == "red disc" and CLASSES[c2] == "orange star"
    centres = [torch.nonzero(mask).float().mean(0) for _, mask in objects]
    assert torch.dist(centres[0], centres[1]) > 80
    assert torch.equal(example_image()[0], x)


# ---- the embedded model ----------------------------------------------------------------------

def test_weights_file_is_small_and_shipped_as_package_data():
    assert os.path.getsize(WEIGHTS_PATH) < 2 * 1024 * 1024
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        package_data = tomllib.load(f)["tool"]["setuptools"]["package-data"]
    assert "data/*.pt" in package_data["xaifast.benchmark"]


def test_model_layers_have_the_documented_shapes(example):
    model, x, *_ = example
    modules = dict(model.named_modules())
    outputs = {}
    hooks = [modules[name].register_forward_hook(lambda m, i, o, key=key: outputs.__setitem__(key, o.shape))
             for key, name in model.xaifast_layers.items()]
    with torch.no_grad():
        logits = model(x)
    for hook in hooks:
        hook.remove()
    assert logits.shape == (1, NUM_CLASSES)
    assert outputs == {"grad_cam": (1, 128, 14, 14), "saliency_layer": (1, 32, 56, 56),
                       "contrast_layer": (1, 128, 7, 7), "classifier_layer": (1, NUM_CLASSES)}


def test_get_example_data_offline_returns_the_embedded_model(monkeypatch, caplog):
    monkeypatch.delenv("XAIFAST_EXAMPLE_IMAGE", raising=False)
    with caplog.at_level(logging.INFO, logger="xaifast.benchmark"):
        model, x, c1, c2 = get_example_data()
    assert "embedded" in caplog.text
    assert isinstance(model, ExampleNet) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    expected, e1, e2, _ = example_image()
    assert (c1, c2) == (e1, e2) and torch.equal(x.cpu(), expected)
    with torch.no_grad():
        top2 = model(x).topk(2).indices[0].tolist()
    assert set(top2) == {c1, c2}
    assert model.classes == CLASSES
    # Trained weights, not a fresh initialisation.
    fresh = get_example_model(pretrained=False)
    assert not torch.equal(fresh.classifier[1].weight, model.classifier[1].weight.cpu())


def test_get_example_data_without_torchvision_falls_back(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` raises ImportError
    with caplog.at_level(logging.INFO, logger="xaifast.benchmark"):
        model, x, _, _ = get_example_data("vgg16", shape=(128, 160))
    assert "torchvision is not installed" in caplog.text
    assert isinstance(model, ExampleNet) and x.shape == (1, 3, 128, 160)
    with pytest.raises(ValueError, match="arch"):
        get_example_data("vgg17")


def _fake_torchvision():
    """Just enough of torchvision for get_example_data's VGG16 branch (torchvision is not a dependency)."""
    import types

    from PIL import Image

    from xaifast.utils import pil_to_tensor

    weights = types.SimpleNamespace(url="https://example.invalid/vgg16-397923af.pth",
                                    meta={"categories": [f"class {i}" for i in range(1000)]})
    calls = []

    def get_model(arch, weights):
        calls.append((arch, weights))
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def compose(steps):
        def run(img):
            for step in steps:
                img = step(img)
            return img
        return run

    models = types.SimpleNamespace(list_models=lambda module=None: ["vgg16"], get_model=get_model,
                                   get_model_weights=lambda arch: types.SimpleNamespace(IMAGENET1K_V1=weights))
    transforms = types.SimpleNamespace(
        Compose=compose, Resize=lambda size: (lambda img: img.resize((size, size), Image.BILINEAR)),
        CenterCrop=lambda size: (lambda img: img), ToTensor=lambda: pil_to_tensor,
        Normalize=lambda mean, std: (lambda t: t))
    module = types.ModuleType("torchvision")
    module.models, module.transforms = models, transforms
    return module, calls


def test_get_example_data_uses_torchvision_only_when_everything_is_local(monkeypatch, tmp_path, caplog):
    from PIL import Image

    torchvision, calls = _fake_torchvision()
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv("XAIFAST_EXAMPLE_IMAGE", raising=False)
    caplog.set_level(logging.INFO, logger="xaifast.benchmark")

    model, *_ = get_example_data()
    assert isinstance(model, ExampleNet) and "not in the torch hub cache" in caplog.text and not calls

    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth").write_bytes(b"")
    model, *_ = get_example_data()
    assert isinstance(model, ExampleNet) and "XAIFAST_EXAMPLE_IMAGE is not set" in caplog.text and not calls

    picture = tmp_path / "dog_and_cats.png"
    Image.new("RGB", (300, 200), "gray").save(picture)
    monkeypatch.setenv("XAIFAST_EXAMPLE_IMAGE", str(picture))
    model, x, c1, c2 = get_example_data(shape=64)
    assert not isinstance(model, ExampleNet) and len(calls) == 1 and calls[0][0] == "vgg16"
    assert (c1, c2) == (245, 285) and x.shape == (1, 3, 64, 64)
    assert model.xaifast_layers["grad_cam"] == "features.29" and model.classes[245] == "class 245"
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert get_example_data("example")[2:] == (0, 6)


def test_example_model_classifies_the_synthetic_images(example):
    model = example[0]
    data = make_example_set(8, seed=123)
    with torch.no_grad():
        predicted = (model(data.images) > 0).float()
    assert (predicted == data.labels).float().mean() > 0.9


@pytest.mark.parametrize("which", [0, 1])
def test_grad_cam_points_at_each_object(example, which):
    model, x, c1, c2, objects = example
    category, mask = objects[which]
    assert category == (c1, c2)[which]
    saliency = grad_cam(model, x, category, saliency_layer=model.xaifast_layers["grad_cam"], resize=True)
    assert saliency.shape == (1, 1, 224, 224)
    peak = int(saliency.flatten().argmax())
    y, x_ = divmod(peak, 224)
    assert distance_to_mask(mask, y, x_) <= 15
    assert distance_to_mask(objects[1 - which][1], y, x_) > 15


def test_get_model():
    assert isinstance(get_model(), ExampleNet)
    with pytest.raises(ValueError, match="arch"):
        get_model("vgg16")


# ---- plot_example ----------------------------------------------------------------------------

def test_plot_example_with_matplotlib(tmp_path, example):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    _, x, c1, c2, _ = example
    path = tmp_path / "sub" / "figure.png"
    plot_example(torch.cat([x, x]), torch.rand(2, 1, 14, 14), "grad-cam", [c1, c2], save_path=str(path))
    assert path.stat().st_size > 1000


def test_plot_example_without_matplotlib(tmp_path, monkeypatch, example):
    from PIL import Image

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    _, x, c1, _, _ = example
    path = tmp_path / "figure.png"
    plot_example(x, torch.rand(1, 1, 14, 14), "grad-cam", c1, save_path=path)
    with Image.open(path) as figure:
        assert figure.size == (2 * 224 + 4, 224 + 14)
    with pytest.warns(UserWarning, match="matplotlib"):
        plot_example(x, torch.rand(1, 1, 14, 14), "grad-cam", c1, show_plot=True)


# ---- bad arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, error, name", [
    (lambda: make_example_set(0), ValueError, "num_images"),
    (lambda: make_example_set(2.5), TypeError, "num_images"),
    (lambda: make_example_set(1, seed=-1), ValueError, "seed"),
    (lambda: make_example_set(1, size=16), ValueError, "size"),
    (lambda: SyntheticShapes(1, size=(224, 10)), ValueError, "size"),
    (lambda: example_image(size="big"), TypeError, "size"),
    (lambda: get_example_data(arch="not-a-model"), ValueError, "arch"),
    (lambda: get_example_data(arch=16), TypeError, "arch"),
    (lambda: get_example_data(arch="example", shape=8), ValueError, "shape"),
    (lambda: get_example_model(pretrained="yes"), TypeError, "pretrained"),
    (lambda: plot_example(torch.zeros(2, 3, 8, 8), torch.zeros(1, 1, 8, 8), "m", 0), ValueError, "saliency"),
    (lambda: plot_example(torch.zeros(3, 8, 8), torch.zeros(1, 1, 8, 8), "m", 0), ValueError, "input"),
    (lambda: plot_example(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), "m", "cat"), TypeError, "category_id"),
    (lambda: plot_example(torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 8, 8), 3, 0), TypeError, "method"),
])
def test_bad_arguments_name_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_training_script_runs(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import train_example_model
    finally:
        sys.path.pop(0)
    threads, deterministic, rng = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                                   torch.get_rng_state())
    output = tmp_path / "model.pt"
    try:
        train_example_model.main(["--train-images", "32", "--val-images", "8", "--epochs", "1",
                                  "--batch-size", "16", "--output", str(output)])
    finally:  # the script sets these for its process
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.set_rng_state(rng)
    checkpoint = torch.load(output, weights_only=True)
    assert tuple(checkpoint["classes"]) == CLASSES
    model = ExampleNet()
    model.load_state_dict(checkpoint["state_dict"])

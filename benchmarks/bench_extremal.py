"""Extremal perturbation at 224 x 224: the pyramid, its lookup, the mask generator and whole runs.

Three implementations side by side in every group: ``xaifast`` (the public API, compiled ops),
``reference`` (xaifast's pure-PyTorch references, :mod:`xaifast.reference.extremal`) and
``torchray`` (TorchRay's own classes and function, the algorithm the goals are measured
against). The end-to-end cases use a model whose forward costs almost nothing (a linear layer
on a ``::8`` sample of the pixels), so what is measured is the method's own work per iteration.
Parity with TorchRay is checked once per case, outside the timed part.
"""

import functools
import statistics
import time

import pytest
import torch
import torch.nn as nn

import xaifast.attribution._extremal_helpers as xaifast_helpers
import xaifast.attribution.extremal_perturbation as xaifast_ep
import xaifast.reference.extremal as reference

try:
    import torchray.attribution.extremal_perturbation as torchray_ep
except Exception:  # optional oracle
    torchray_ep = None

IMPLS = ["xaifast", "reference"] + (["torchray"] if torchray_ep is not None else [])
SIZE, LEVELS, STEP, SIGMA, MAX_BLUR = 224, 8, 7, 21, 20
CELLS = -(-SIZE // STEP)  # 32 mask parameters a side


def _image():
    return torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _pyramid_builder(impl):
    """``input -> (L, C, H, W)`` pyramid, as each implementation builds it."""
    if impl == "xaifast":
        return lambda x: xaifast_ep.Perturbation(x, num_levels=LEVELS).pyramid
    if impl == "torchray":
        return lambda x: torchray_ep.Perturbation(x, num_levels=LEVELS).pyramid
    return lambda x: reference.blur_pyramid(x, LEVELS, MAX_BLUR, "blur")[0]


@functools.lru_cache(maxsize=1)
def _torchray_pyramid():
    return torchray_ep.Perturbation(_image(), num_levels=LEVELS).pyramid if torchray_ep else None


@pytest.mark.parametrize("impl", IMPLS)
def test_pyramid_build(record, impl):
    record.group = f"ep-pyramid-build-cpu-1x3x{SIZE}x{SIZE}-L{LEVELS}"
    x = _image()
    out = record(_pyramid_builder(impl), x)
    assert out.shape == (LEVELS, 3, SIZE, SIZE)
    if torchray_ep is not None:
        torch.testing.assert_close(out, _torchray_pyramid(), rtol=1e-5, atol=1e-6)


def _apply(impl, pyramid):
    """``mask -> perturbed images`` through each implementation's lookup, on one shared pyramid."""
    if impl == "xaifast":
        perturbation = xaifast_ep.Perturbation(torch.zeros(1, 3, 8, 8), num_levels=LEVELS)
    elif impl == "torchray":
        perturbation = torchray_ep.Perturbation(torch.zeros(1, 3, 8, 8), num_levels=LEVELS)
    else:
        return lambda mask: reference.pyramid_lookup(pyramid, mask)
    perturbation.pyramid = pyramid  # the classes read only this (and num_levels) in apply
    return perturbation.apply


def _apply_inputs(masks, kind="noise"):
    """The pyramid, ``masks`` masks and loss weights. ``kind``: ``'noise'``, uniform per pixel
    (every 16 neighbouring pixels span all levels: the lookup's worst case), or ``'generated'``,
    the mask generator's smooth masks from uniform parameters (what extremal perturbation feeds
    ``apply``)."""
    generator = torch.Generator().manual_seed(2)
    pyramid = reference.blur_pyramid(_image(), LEVELS, MAX_BLUR, "blur")[0]
    mask = torch.rand(masks, 1, SIZE, SIZE, generator=generator)
    weights = torch.rand(masks, 3, SIZE, SIZE, generator=generator)
    if kind == "generated":
        params = torch.rand(masks, 1, CELLS, CELLS, generator=generator)
        mask = reference.smooth_mask(params, (SIZE, SIZE), STEP, SIGMA)[0].contiguous()
    return pyramid, mask, weights


def _torchray_or_reference_apply(pyramid):
    return _apply("torchray" if torchray_ep is not None else "reference", pyramid)


MASK_KINDS = {"noise": "", "generated": "-generated-masks"}


@pytest.mark.parametrize("kind", list(MASK_KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_pyramid_apply_forward(record, impl, kind):
    record.group = f"ep-pyramid-apply-forward-cpu-K4x{SIZE}x{SIZE}-L{LEVELS}{MASK_KINDS[kind]}"
    pyramid, mask, _ = _apply_inputs(4, kind)
    out = record(_apply(impl, pyramid), mask)
    torch.testing.assert_close(out, _torchray_or_reference_apply(pyramid)(mask), rtol=1e-5, atol=1e-6)


def _apply_forward_backward(apply, mask, grad):
    """``apply`` forward, then its backward for a fixed output gradient ``grad``. (Until
    2026-11-30 the backward came from a loss ``(out * grad).sum()``, whose two 2.4 MB
    multiplications took longer than xaifast's lookup and its backward together.)"""
    mask = mask.clone().requires_grad_(True)

    def run():
        mask.grad = None
        out = apply(mask)
        out.backward(grad)
        return out.detach(), mask.grad

    return run


@pytest.mark.parametrize("kind", list(MASK_KINDS))
@pytest.mark.parametrize("impl", IMPLS)
def test_pyramid_apply_forward_backward(record, impl, kind):
    record.group = f"ep-pyramid-apply-fwd+bwd-cpu-K4x{SIZE}x{SIZE}-L{LEVELS}{MASK_KINDS[kind]}"
    pyramid, mask, weights = _apply_inputs(4, kind)
    out, grad = record(_apply_forward_backward(_apply(impl, pyramid), mask, weights))
    expected_out, expected_grad = _apply_forward_backward(_torchray_or_reference_apply(pyramid), mask, weights)()
    torch.testing.assert_close(out, expected_out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-5, atol=1e-5)


def _generator(impl):
    """``mask_in -> (cropped, full)``: the mask generator extremal_perturbation builds (its defaults)."""
    if impl == "xaifast":
        return xaifast_ep.MaskGenerator((SIZE, SIZE), STEP, SIGMA).generate
    if impl == "torchray":
        return torchray_ep.MaskGenerator((SIZE, SIZE), STEP, SIGMA).generate
    return lambda mask_in: reference.smooth_mask(mask_in, (SIZE, SIZE), STEP, SIGMA)


def _generator_inputs(masks):
    generator = torch.Generator().manual_seed(3)
    mask_in = torch.rand(masks, 1, CELLS, CELLS, generator=generator)
    shape_out = reference.mask_geometry((SIZE, SIZE), STEP, SIGMA).shape_out
    return mask_in, torch.rand(masks, 1, *shape_out, generator=generator)


def _generate_forward_backward(generate, mask_in, weights):
    mask_in = mask_in.clone().requires_grad_(True)

    def run():
        mask_in.grad = None
        cropped, full = generate(mask_in)
        (full * weights).sum().backward()  # cropped is a view of full: one gradient covers both
        return cropped.detach(), full.detach(), mask_in.grad

    return run


def _check_generator(got, mask_in, weights):
    if torchray_ep is None:
        return
    expected = _generate_forward_backward(_generator("torchray"), mask_in, weights)()
    # Gradients are sums of ~4000 terms of size up to ~250: relative tolerance 1e-4.
    for name, value, wanted, tol in zip(("cropped", "full", "grad"), got, expected, (1e-5, 1e-5, 1e-4)):
        torch.testing.assert_close(value, wanted, rtol=tol, atol=tol, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("masks", [1, 4])
@pytest.mark.parametrize("impl", IMPLS)
def test_mask_generator_forward(record, impl, masks):
    record.group = f"ep-mask-generator-forward-cpu-{SIZE}-step{STEP}-sigma{SIGMA}-K{masks}"
    mask_in, _ = _generator_inputs(masks)
    cropped, full = record(_generator(impl), mask_in)
    assert cropped.shape == (masks, 1, SIZE, SIZE)
    if torchray_ep is not None:
        expected_cropped, expected_full = _generator("torchray")(mask_in)
        torch.testing.assert_close(full, expected_full, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(cropped, expected_cropped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masks", [1, 4])
@pytest.mark.parametrize("impl", IMPLS)
def test_mask_generator_forward_backward(record, impl, masks):
    record.group = f"ep-mask-generator-fwd+bwd-cpu-{SIZE}-step{STEP}-sigma{SIGMA}-K{masks}"
    mask_in, weights = _generator_inputs(masks)
    got = record(_generate_forward_backward(_generator(impl), mask_in, weights))
    _check_generator(got, mask_in, weights)


class _CheapModel(nn.Module):
    """A model whose forward costs almost nothing: a linear layer on a ``::8`` sample of pixels."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 28 * 28, 10)

    def forward(self, x):
        return self.linear(x[:, :, ::8, ::8].flatten(1))


AREAS = {"areas1": [0.1], "areas4": [0.05, 0.1, 0.2, 0.3]}
MAX_ITER, TARGET = 5, 3


def _reference_path(monkeypatch):
    """Run xaifast's extremal_perturbation on its pure-PyTorch references (no compiled op)."""
    monkeypatch.setattr(xaifast_ep, "blur_pyramid", reference.blur_pyramid)
    monkeypatch.setattr(xaifast_ep, "smooth_mask", reference.smooth_mask)
    monkeypatch.setattr(xaifast_ep, "pyramid_lookup", reference.pyramid_lookup)
    monkeypatch.setattr(xaifast_helpers, "pyramid_lookup", reference.pyramid_lookup)
    monkeypatch.setattr(xaifast_ep, "_DIRECT_GRADIENTS", False)  # its steps call the compiled ops


@functools.lru_cache(maxsize=2)
def _torchray_run(case):
    return torchray_ep.extremal_perturbation(_CheapModel().eval(), _image(), TARGET, areas=AREAS[case],
                                             max_iter=MAX_ITER)


def _median_seconds(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.mark.parametrize("case", list(AREAS))
@pytest.mark.parametrize("impl", IMPLS)
def test_extremal_perturbation_end_to_end(record, monkeypatch, impl, case):
    record.group = f"ep-e2e-per-iteration-cpu-{SIZE}-{case}"
    if impl == "reference":
        _reference_path(monkeypatch)
    fn = torchray_ep.extremal_perturbation if impl == "torchray" else xaifast_ep.extremal_perturbation
    model, x = _CheapModel().eval(), _image()
    masks, hist = record.pedantic(fn, args=(model, x, TARGET), kwargs=dict(areas=AREAS[case], max_iter=MAX_ITER),
                                  rounds=5, iterations=1, warmup_rounds=1)
    assert masks.shape == (len(AREAS[case]), 1, SIZE, SIZE)
    if torchray_ep is not None:
        expected_masks, expected_hist = _torchray_run(case)
        # The optimisation amplifies last-bit differences (summation order, ties at the area
        # threshold; see extremal_perturbation's docstring): ~1e-3 after 5 iterations.
        torch.testing.assert_close(masks, expected_masks, rtol=0, atol=2e-3)
        torch.testing.assert_close(hist, expected_hist, rtol=2e-3, atol=1e-4)
    if record.stats is not None:  # None under --benchmark-disable
        # Per iteration: the median call over max_iter, with and without the pyramid built once per call.
        median = record.stats.stats.median
        pyramid = _median_seconds(lambda: _pyramid_builder(impl)(x))
        record.extra_info["ms_per_iter"] = median / MAX_ITER * 1e3
        record.extra_info["ms_per_iter_without_pyramid"] = (median - pyramid) / MAX_ITER * 1e3

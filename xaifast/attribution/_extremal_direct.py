"""One extremal-perturbation iteration with the method's own gradient computed directly.

Only the model, the reward and the pyramid lookup run under autograd (``torch.autograd.grad`` down
to the masks looked up); the mask generator, the clamp and crop, the jitter flip and the area
regulariser are differentiated here, by their compiled backward ops, in the order and with the
arithmetic autograd would use: the parameters' gradient has the same bits as
``(-energy).backward()`` through the same ops (tested), without a dozen autograd nodes and their
Python wrappers per iteration (~0.4 ms of a ~3 ms one-area iteration at 224 x 224).

Used on the CPU with the compiled kernels and a geometry they take (:func:`available`); elsewhere
the loop keeps autograd.
"""

import torch

from ..ops.extremal import _smooth_mask_kernel_runs, pyramid_lookup
from ..reference.extremal import COLDNESS, area_residuals, clamp_and_crop
from . import _extremal_helpers as helpers


def available(device, dtype, geometry):
    """Whether :class:`DirectStep` can run: the CPU ``smooth_mask`` kernel (float32/float64, a
    regular geometry) and the CPU ``area_targets`` op."""
    return torch.device(device).type == "cpu" and _smooth_mask_kernel_runs(device, dtype, geometry)


def within_unit_interval(x):
    """Whether every value of a CPU tensor is in ``[0, 1]`` (False for NaN). Clamping such a
    tensor to ``[0, 1]`` changes neither it nor a gradient through it (the clamp's backward passes
    the gradient at 0 and 1), so :meth:`DirectStep.masks` skips the clamp then. (The public
    ``smooth_mask`` always clamps: its outputs must not alias what its backward saved.)"""
    lo, hi = torch.aminmax(x.detach())
    return bool(lo >= 0) and bool(hi <= 1)


class DirectStep:
    """Forward pieces of one iteration that remember what their gradient needs, and that gradient.

    Per iteration: :meth:`masks` (parameters -> cropped and full masks), :meth:`perturbed` (the
    model's batch), :meth:`regulariser` (the area losses), then :meth:`gradient` of the rewards and
    the losses with respect to the parameters.
    """

    def __init__(self, geometry, pyramid, flipped_pyramid, variant, num_images, num_areas, areas, dtype):
        self.geometry = geometry
        self.weight = geometry.plane_weights("cpu", dtype)
        self.pyramid, self.flipped_pyramid = pyramid, flipped_pyramid
        self.variant, self.num_images, self.num_areas = variant, num_images, num_areas
        self.areas = areas

    def masks(self, pmask):
        g = self.geometry
        raw, self.stats = torch.ops.xaifast.smooth_mask(pmask.detach(), self.weight, g.step, g.padding, "softmax",
                                                        COLDNESS)
        self.pmask, self.raw = pmask.detach(), raw
        self.clamped = not within_unit_interval(raw)
        cropped, self.full = clamp_and_crop(raw, g, self.clamped)
        return cropped, self.full

    def perturbed(self, cropped, flip):
        """The batch :func:`_extremal_helpers.perturbed` builds. Each block's looked-up masks are
        an autograd leaf, so the batch is the lookup op's output (a model may change it in place)
        and autograd runs the lookup's backward too, as it would through the whole graph."""
        self.flip = flip
        mask = torch.flip(cropped, dims=(3,)) if flip else cropped
        pyramids = self.flipped_pyramid if flip else self.pyramid
        self.blocks = []  # (leaf looked up, negated, image)
        outputs = []
        for image, pyramid, masks, complement in helpers.lookups(pyramids, mask, self.variant, self.num_images,
                                                                 self.num_areas):
            leaf = (1 - masks if complement else masks).detach().requires_grad_(True)
            self.blocks.append((leaf, complement, image))
            outputs.append(pyramid_lookup(pyramid, leaf))
        return outputs[0] if len(outputs) == 1 else torch.cat(outputs)

    def regulariser(self):
        """The area losses, ``(K,)``: ``mean((mask - step)^2)`` per mask, as ``area_loss``."""
        self.diff = area_residuals(self.full, self.areas, targets=torch.ops.xaifast.area_targets)
        return (self.diff ** 2).mean(dim=1)

    def gradient(self, reward, regul_weight):
        """The parameters' gradient of ``-(sum(reward) - regul_weight * sum(area losses))``."""
        g = self.geometry
        k, rows = self.num_areas, self.diff.shape[1]
        # The regulariser's: d/d loss = regul_weight; mean: / n; square: * 2 diff.
        scale = torch.full((self.diff.shape[0], 1), regul_weight, dtype=self.diff.dtype) / rows
        grad_full = (scale * (2 * self.diff)).view_as(self.full)
        leaves = [leaf for leaf, _, _ in self.blocks]
        grads = [None] * len(leaves)
        if reward.requires_grad:  # (a reward that ignores the images leaves only the regulariser)
            grads = torch.autograd.grad(reward, leaves, grad_outputs=torch.full_like(reward, -1), allow_unused=True)
        used = [(grad, negated, image) for grad, (_, negated, image) in zip(grads, self.blocks) if grad is not None]
        if used:
            if len(self.blocks) == 1:
                grad_mask = -used[0][0] if used[0][1] else used[0][0]
            else:  # autograd's sums: zeros, then each use of an image's masks added (1 - m: negated)
                grad_mask = torch.zeros(self.full.shape[0], 1, *g.shape, dtype=used[0][0].dtype)
                for grad, negated, image in used:
                    grad_mask[image * k:(image + 1) * k] += -grad if negated else grad
            if self.flip:
                grad_mask = torch.flip(grad_mask, dims=(3,))
            top = g.crop
            grad_full[:, :, top:top + g.shape[0], top:top + g.shape[1]] += grad_mask
        if self.clamped:
            grad_full = torch.where((self.raw >= 0) & (self.raw <= 1), grad_full, 0)
        return torch.ops.xaifast._smooth_mask_backward(grad_full, self.pmask, self.weight, self.raw, self.stats,
                                                       g.step, g.padding, "softmax", COLDNESS)

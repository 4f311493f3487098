"""One extremal-perturbation iteration with the method's own gradient computed directly.

Only the model and the reward run under autograd (``torch.autograd.grad`` down to the perturbed
images); the mask generator, the clamp and crop, the jitter flip, the pyramid lookup and the area
regulariser are differentiated here, by their compiled backward ops, in the order and with the
arithmetic autograd would use: the parameters' gradient has the same bits as
``(-energy).backward()`` through the same ops (tested), without a dozen autograd nodes and their
Python wrappers per iteration (~0.4 ms of a ~3 ms one-area iteration at 224 x 224).

Used on the CPU with the compiled kernels and a geometry they take (:func:`available`); elsewhere
the loop keeps autograd.
"""

import torch

from .._extension import HAS_EXT, has_kernel
from ..ops.extremal import _within_unit_interval
from ..reference.extremal import COLDNESS, _reference_counts


def available(device, dtype, geometry):
    """Whether :class:`DirectStep` can run: CPU kernels, float32/float64, a regular geometry."""
    return (HAS_EXT and torch.device(device).type == "cpu" and has_kernel("cpu")
            and dtype in (torch.float32, torch.float64) and geometry.regular)


class DirectStep:
    """Forward pieces of one iteration that remember what their gradient needs, and that gradient.

    Per iteration: :meth:`masks` (parameters -> cropped and full masks), :meth:`perturbed` (the
    model's batch, a leaf that requires grad), :meth:`regulariser` (the area losses), then
    :meth:`gradient` with the gradient of the rewards' sum with respect to the batch.
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
        # The clamp is the identity (value and gradient) when every value is in [0, 1].
        self.clamped = not _within_unit_interval(raw)
        full = raw.clamp(0, 1) if self.clamped else raw
        self.full = full
        top = g.crop
        return full[:, :, top:top + g.shape[0], top:top + g.shape[1]], full

    def perturbed(self, cropped, flip):
        """The batch :func:`_extremal_helpers.perturbed` builds, as a leaf requiring grad."""
        self.flip = flip
        mask = torch.flip(cropped, dims=(3,)) if flip else cropped
        pyramids = self.flipped_pyramid if flip else self.pyramid
        self.blocks = []  # (pyramid, mask looked up, negated, image, first row of the image's masks)
        outputs = []
        k = self.num_areas
        for image in range(self.num_images):
            pyramid = pyramids if self.num_images == 1 else pyramids[image]
            masks = mask if self.num_images == 1 else mask[image * k:(image + 1) * k]
            looks = {"preserve": [(masks, False)], "delete": [(1 - masks, True)],
                     "dual": [(masks, False), (1 - masks, True)]}[self.variant]
            for looked_up, negated in looks:
                self.blocks.append((pyramid, looked_up, negated, image))
                outputs.append(torch.ops.xaifast.pyramid_lookup(pyramid, looked_up))
        x = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
        return x.requires_grad_(True)

    def regulariser(self):
        """The area losses, ``(K,)``: ``mean((mask - step)^2)`` per mask, as ``area_loss``."""
        rows = self.full.reshape(self.full.shape[0], -1)
        size = rows.shape[1]
        zeros = [_reference_counts(area, size)[0] for area in self.areas]
        self.diff = rows - torch.ops.xaifast.area_targets(rows, zeros)
        return (self.diff ** 2).mean(dim=1)

    def gradient(self, grad_x, regul_weight):
        """The parameters' gradient of ``-(sum(rewards) - regul_weight * sum(area losses))`` given
        ``grad_x``, the gradient of ``-sum(rewards)`` with respect to the batch (None: zero)."""
        g = self.geometry
        k, rows = self.num_areas, self.diff.shape[1]
        # The regulariser's: d/d loss = regul_weight; mean: / n; square: * 2 diff.
        scale = torch.full((self.diff.shape[0], 1), regul_weight, dtype=self.diff.dtype) / rows
        grad_full = (scale * (2 * self.diff)).view_as(self.full)
        if grad_x is not None:
            grads = []
            offset = 0
            for pyramid, looked_up, negated, image in self.blocks:
                block = grad_x[offset:offset + looked_up.shape[0]]
                offset += looked_up.shape[0]
                grad = torch.ops.xaifast._pyramid_lookup_backward(block.contiguous(), pyramid, looked_up)
                grads.append((-grad if negated else grad, image))  # 1 - m: the gradient negated
            if len(grads) == 1:
                grad_mask = grads[0][0]
            else:  # autograd's sums: zeros, then each use of an image's masks added
                grad_mask = torch.zeros(self.full.shape[0], 1, *g.shape, dtype=grads[0][0].dtype)
                for grad, image in grads:
                    grad_mask[image * k:(image + 1) * k] += grad
            if self.flip:
                grad_mask = torch.flip(grad_mask, dims=(3,))
            top = g.crop
            grad_full[:, :, top:top + g.shape[0], top:top + g.shape[1]] += grad_mask
        if self.clamped:
            grad_full = torch.where((self.raw >= 0) & (self.raw <= 1), grad_full, 0)
        return torch.ops.xaifast._smooth_mask_backward(grad_full, self.pmask, self.weight, self.raw, self.stats,
                                                       g.step, g.padding, "softmax", COLDNESS)

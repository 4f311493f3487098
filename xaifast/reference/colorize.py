"""Reference for the ``colorize`` op: zennit's imgify index arithmetic with torch ops."""

import torch


def colorize(heatmaps, vmin, vmax, palette, symmetric=False):
    """RGB images of heatmaps through a palette, as zennit's ``imgify`` computes them.

    ``index = trunc(clip((x - vmin[n]) / (vmax[n] - vmin[n]) * 255, 0, 255))`` with NaN -> 0, each
    step in the dtype numpy would use: ``x - vmin`` in ``promote(x, vmin)``, ``vmax - vmin`` in
    ``promote(vmax, vmin)``, the rest in the wider of the two.

    Args:
        heatmaps (Tensor): ``(N, H, W)`` float32 or float64.
        vmin (Tensor or None): ``(N,)`` lower bounds (float32 or float64); ``None``: each map's
            minimum (``-max|x|`` when ``symmetric``), in the heatmaps' dtype, NaN for a map with NaN.
        vmax (Tensor or None): ``(N,)`` upper bounds; ``None``: each map's maximum (``max|x|``).
        palette (Tensor): ``(256, 3)`` uint8.
        symmetric (bool): shape of the automatic bounds. Default: ``False``.

    Returns:
        Tensor: ``(N, H, W, 3)`` uint8.
    """
    if vmin is None or vmax is None:
        flat = heatmaps.reshape(heatmaps.shape[0], -1)
        low, high = flat.amin(1), flat.amax(1)
        if symmetric:
            high = flat.abs().amax(1)
            low = -high
        vmin = low if vmin is None else vmin
        vmax = high if vmax is None else vmax
    diff_type = torch.promote_types(heatmaps.dtype, vmin.dtype)
    span_type = torch.promote_types(vmax.dtype, vmin.dtype)
    quotient_type = torch.promote_types(diff_type, span_type)
    diff = heatmaps.to(diff_type) - vmin.to(diff_type)[:, None, None]
    span = vmax.to(span_type) - vmin.to(span_type)
    scaled = (diff.to(quotient_type) / span.to(quotient_type)[:, None, None] * 255).clamp(0, 255)
    index = torch.nan_to_num(scaled, nan=0.0).to(torch.uint8)
    return palette[index.long()]

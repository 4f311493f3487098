"""``xaifast.info()``: what this installation can do."""

import torch

from . import _extension


def _registered_ops():
    names = []
    try:
        all_names = torch._C._dispatch_get_all_op_names()
    except AttributeError:  # private API: degrade to an empty list rather than fail
        return names
    for name in all_names:
        if name.startswith("xaifast::"):
            names.append(name.split("::", 1)[1])
    return sorted(names)


def info():
    """Describe the installation: extension, kernels, torch, threads.

    Returns:
        dict: with keys

        * ``extension_loaded`` (bool): the compiled extension ``xaifast._C`` imported.
        * ``load_error`` (str or None): why it did not.
        * ``ops`` (list of str): op names registered under ``torch.ops.xaifast``.
        * ``kernel_devices`` (list of str): device types with compiled kernels.
        * ``cuda_built`` (bool): the extension was built with its CUDA kernels.
        * ``cuda_available`` (bool): ``torch.cuda.is_available()``.
        * ``openmp`` (bool or None), ``simd`` (list of str), ``compiler`` (str or None):
          build facts of the extension (``None``/empty without it).
        * ``cpu_dispatch`` (str or None): the clone of the hot CPU loops this CPU runs:
          ``'x86-64-v4'`` (AVX-512), ``'x86-64-v3'`` (AVX2/FMA) or ``'baseline'``.
        * ``colorize_lookup`` (str or None): the palette lookup loop of ``colorize`` on this CPU:
          ``'vbmi'`` (AVX-512 byte permutes), ``'gather'`` (AVX-512 gathers) or ``'scalar'``.
        * ``torch`` (str): torch version; ``threads`` (int): ``torch.get_num_threads()``.
        * ``version`` (str): xaifast version.

    Example:
        >>> import xaifast
        >>> xaifast.info()["extension_loaded"]  # doctest: +SKIP
        True
    """
    from . import __version__

    ext = _extension._C
    return {
        "version": __version__,
        "extension_loaded": _extension.HAS_EXT,
        "load_error": _extension.LOAD_ERROR,
        "ops": _registered_ops(),
        "kernel_devices": sorted(_extension.KERNEL_DEVICES),
        "cuda_built": bool(ext.cuda_built()) if ext is not None else False,
        "cuda_available": torch.cuda.is_available(),
        "openmp": bool(ext.openmp()) if ext is not None else None,
        "simd": list(ext.simd()) if ext is not None else [],
        "compiler": ext.compiler() if ext is not None else None,
        "cpu_dispatch": ext.cpu_dispatch() if ext is not None else None,
        "colorize_lookup": ext.colorize_lookup() if ext is not None else None,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }

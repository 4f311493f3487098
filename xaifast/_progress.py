"""Progress bars: tqdm when it is installed, a plain stderr counter otherwise; off by default."""

import sys


class _PlainProgress:
    """A minimal stand-in for tqdm: one carriage-returned line on stderr."""

    def __init__(self, iterable, total, desc):
        self.iterable = iterable
        self.total = total if total is not None else len(iterable)
        self.desc = desc

    def __iter__(self):
        for done, item in enumerate(self.iterable, 1):
            yield item
            sys.stderr.write(f"\r{self.desc}: {done}/{self.total}")
            sys.stderr.flush()
        sys.stderr.write("\n")


def progress(iterable, total=None, desc="", enable=False):
    """Wrap ``iterable`` in a progress bar when ``enable`` (tqdm if importable).

    Args:
        iterable: what to iterate over.
        total (int, optional): number of items, if ``iterable`` has no ``len``.
        desc (str): label shown before the counter.
        enable (bool): show a bar at all. Default: ``False`` (library calls are quiet).

    Returns:
        An iterable over the same items.
    """
    if not enable:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainProgress(iterable, total, desc)
    return tqdm(iterable, total=total, desc=desc)

"""Atomic file writes: a temporary file beside the target, renamed over it when complete.

A reader (or a resumed run) therefore sees either no file or the whole file, never half of one,
even when the writer is killed. The temporary names are hidden and tagged
(``.<name>.<random>.tmp``), so :func:`remove_stale` can clear what a killed writer left behind.
"""

import contextlib
import glob
import os
import tempfile

__all__ = ["atomic_open", "remove_stale", "temporary_name_pattern"]


def temporary_name_pattern(path):
    """The glob pattern of the temporary files :func:`atomic_open` makes for ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(glob.escape(folder), f".{glob.escape(name)}.*.tmp")


def remove_stale(path):
    """Delete temporary files left for ``path`` by a killed writer; returns how many were removed."""
    removed = 0
    for stale in glob.glob(temporary_name_pattern(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
            removed += 1
    return removed


def _usual_permissions(path):
    # mkstemp makes 0600; give the file the permissions open() would (0666 less the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; on a clean exit it replaces ``path``, on an error it is removed.

    Args:
        path (str or os.PathLike): the file to write; its folder must exist.
        mode (str): ``'wb'`` (default) or ``'w'`` (text, UTF-8).

    Yields:
        file object: the open temporary file.

    Raises:
        OSError: the folder is not writable, or writing / renaming failed (no file is left behind).

    Example:
        >>> with atomic_open("out.png") as stream:  # doctest: +SKIP
        ...     image.save(stream, format="PNG")
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())  # the data reaches the disk before the name points at it
        _usual_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

"""Atomic file output: a file is either absent or complete, never half-written."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import xarray as xr


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    The temporary file (or directory, for Zarr stores) lives in the same directory and keeps
    the suffix (writers pick their format from it), so the final ``os.replace`` is atomic.
    On any error it is removed and ``path`` is untouched; a full disk is reported as such.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(f"Output directory '{directory}' does not exist.")
    if not os.access(directory, os.W_OK):
        raise PermissionError(f"Output directory '{directory}' is not writable.")
    handle, temporary = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=directory
    )
    os.close(handle)
    os.remove(temporary)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException as error:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC,
                f"No space left on the device while writing '{target}'; the previous version, "
                "if any, is untouched. Free some space and run the command again.",
            ) from None
        raise


def write_netcdf(dataset: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``dataset`` to the NetCDF file ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        dataset.to_netcdf(temporary)
    return Path(path)

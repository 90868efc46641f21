"""The one jit setting shared by every kernel (cached to disk so a second start does not recompile)."""
import hashlib
from pathlib import Path

import numba

JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")


def _cache_dirs(here: Path) -> list[Path]:
    """Where Numba caches evsim's kernels: beside the sources, or under NUMBA_CACHE_DIR.

    Under NUMBA_CACHE_DIR, Numba names the folder after the source folder and
    the SHA-1 of its absolute path (numba.core.caching, _CacheLocator).
    """
    dirs = [here / "__pycache__"]
    if numba.config.CACHE_DIR:
        source_dir = str(here.resolve())
        hashed = hashlib.sha1(source_dir.encode()).hexdigest()
        dirs.append(Path(numba.config.CACHE_DIR) / f"{here.name}_{hashed}")
    return dirs


def _drop_stale_cache() -> None:
    """Drop evsim's Numba cache when any evsim source changed since it was written.

    Numba's cache checks only the file of the function it caches: a changed
    kernel in kernels.py would otherwise leave the scheduler (cached under
    scheduler.py) running stale machine code. Best effort: an installed,
    read-only package never changes, and Numba then caches elsewhere anyway.
    """
    here = Path(__file__).parent
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))).hexdigest()
    for cache in _cache_dirs(here):
        stamp = cache / "evsim-sources.sha256"
        try:
            if stamp.read_text() == digest:
                continue
        except OSError:
            pass
        try:
            cache.mkdir(parents=True, exist_ok=True)
            for stale in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
                stale.unlink(missing_ok=True)
            stamp.write_text(digest)
        except OSError:
            pass


_drop_stale_cache()


def kernel(function):
    """Compile a small serial kernel."""
    return numba.njit(**JIT_OPTIONS)(function)


def parallel_kernel(function):
    """Compile a driver that runs `numba.prange` loops over samples."""
    return numba.njit(parallel=True, **JIT_OPTIONS)(function)

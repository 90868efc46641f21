"""The one jit setting shared by every kernel (cached to disk so a second start does not recompile)."""
import hashlib
from pathlib import Path

import numba

JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")


def _drop_stale_cache() -> None:
    """Drop evsim's Numba cache when any evsim source changed since it was written.

    Numba's cache checks only the file of the function it caches: a changed
    kernel in kernels.py would otherwise leave the scheduler (cached under
    scheduler.py) running stale machine code. Best effort: an installed,
    read-only package never changes, and Numba then caches elsewhere anyway.
    """
    here = Path(__file__).parent
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py")))).hexdigest()
    cache = here / "__pycache__"
    stamp = cache / "evsim-sources.sha256"
    try:
        if stamp.read_text() == digest:
            return
    except OSError:
        pass
    try:
        cache.mkdir(exist_ok=True)
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

"""The one jit setting shared by every kernel (cached to disk so a second start does not recompile)."""
import numba

JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")


def kernel(function):
    """Compile a small serial kernel."""
    return numba.njit(**JIT_OPTIONS)(function)


def parallel_kernel(function):
    """Compile a driver that runs `numba.prange` loops over samples."""
    return numba.njit(parallel=True, **JIT_OPTIONS)(function)

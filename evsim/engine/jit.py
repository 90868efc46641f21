"""The one jit setting shared by every kernel (cached to disk so a second start does not recompile).

Two kinds of jitted function, chosen for the cold start (the first run
compiles everything):

* `kernel`: compiled on its own and called. The leaves that do one job
  (fire, integrate, encode, record, predict, the delivery dispatch `push`).
* `inline_kernel`: inlined into its caller at Numba's IR level. Tiny helpers
  of hot loops (`add_run`: a call costs a reference-count update per array),
  and the layers between the driver and the leaves (`run_sample`,
  `deliver`, the kernels behind `push`, the analog current, the max gate).
  Numba links every callee's module into its caller's and optimises and
  generates machine code for the whole again, so each separately compiled
  level re-compiles all the code below it: the call tree is kept two levels
  deep (`run_batch` -> leaves -> nothing). Inlining the leaves too would make
  one function so large that type inference alone costs more (measured).
  One exception: `gather_conv` is a kernel that `push` calls (three levels):
  inlined into `push` it made `push` compile in 10.7 s instead of 4.6 s;
  called, in 6.7 s (measured, CPU time, cold cache).

`stack_array` (an intrinsic) gives a kernel a small fixed-size scratch array
on its own stack: no allocation to compile or call, and, LLVM knowing it
aliases nothing, the register block of `gather_conv`'s output-stationary sums.

Numba's disk cache checks only the source file of the function it caches,
while evsim's kernels call kernels of other files and freeze module-level
constants of others (kind codes, counter slots): an edit there would leave a
cached scheduler running stale machine code. So evsim keeps a digest of all
its sources beside every cache folder and drops that folder's cache when the
digest changes.
"""
import hashlib
import os
from pathlib import Path

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy")

PACKAGE = Path(os.path.abspath(__file__)).parent.parent  # evsim/, spelled as Numba spells source paths


def _sources(package: Path) -> list[Path]:
    return sorted(package.rglob("*.py"))


def _cache_dirs(package: Path) -> list[Path]:
    """Where Numba may cache evsim's kernels: beside each source folder, or under NUMBA_CACHE_DIR.

    Under NUMBA_CACHE_DIR, Numba names the folder after the source folder and
    the SHA-1 of its absolute path (numba.core.caching.UserProvidedCacheLocator).
    """
    folders = sorted({path.parent for path in _sources(package)})
    dirs = [folder / "__pycache__" for folder in folders]
    if numba.config.CACHE_DIR:
        for folder in folders:
            hashed = hashlib.sha1(str(folder).encode()).hexdigest()
            dirs.append(Path(numba.config.CACHE_DIR) / f"{folder.name}_{hashed}")
    return dirs


def _drop_stale_cache(package: Path = PACKAGE) -> None:
    """Drop evsim's Numba cache wherever it lives when any evsim source changed since it was written.

    Best effort: an installed, read-only package never changes, and Numba
    then caches elsewhere anyway.
    """
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in _sources(package))).hexdigest()
    for cache in _cache_dirs(package):
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


def inline_kernel(function):
    """Compile a helper that Numba inlines into every caller (at its IR level).

    For the helpers of hot loops: a call between jitted functions is not
    inlined by LLVM and costs a reference-count update per array argument;
    inlined, a per-tap add runs about twice as fast.
    """
    return numba.njit(inline="always", **JIT_OPTIONS)(function)


def is_ready(dispatcher, args) -> bool:
    """Whether calling `dispatcher` with `args` runs at once: compiled in this process, or found in Numba's disk
    cache for these argument types (fresh, as `_drop_stale_cache` keeps it). Else the call compiles (~30 s for the
    scheduler), which a caller may want to announce. Best effort: False when Numba's cache cannot be read."""
    try:
        signature = tuple(dispatcher.typeof_pyval(arg) for arg in args)
        if signature in dispatcher.overloads:
            return True
        cache = getattr(dispatcher, "_cache", None)
        index = cache._cache_file._load_index() if cache is not None else {}
        return any(key[0] == signature for key in index)
    except Exception:  # Numba's cache internals are not a public API: when they change, say "compiling" anyway
        return False


@intrinsic
def stack_array(typingctx, size, like):
    """A 1-d scratch array of `size` (a constant) elements of `like`'s dtype, on the stack of the caller.

    Not an allocation (no NumPy call to compile, nothing to free). LLVM knows
    it aliases no argument, so a loop that accumulates into it with
    constant bounds keeps it in vector registers: the register block of an
    output-stationary kernel (evsim/engine/delivery.py `gather_conv`).
    """
    if not isinstance(size, types.IntegerLiteral):
        return None
    n, dtype = size.literal_value, like.dtype
    array = types.Array(dtype, 1, "C")

    def codegen(context, builder, signature, args):
        item = context.get_data_type(dtype)
        data = cgutils.alloca_once(builder, item, size=n)
        out = make_array(array)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(item))
        populate_array(out, data=data, shape=[context.get_constant(types.intp, n)], strides=[itemsize],
                       itemsize=itemsize, meminfo=None)
        return out._getvalue()

    return array(size, like), codegen

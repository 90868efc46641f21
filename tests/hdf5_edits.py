"""Edits of an open HDF5 file, shared by the hostile-file tests of network files and result files."""


def put(h5path, value):
    """Replace (or create) a dataset or link."""
    def mutate(f):
        if h5path in f or f.get(h5path, getlink=True) is not None:
            del f[h5path]
        f[h5path] = value
    return mutate


def delete(h5path):
    def mutate(f):
        del f[h5path]
    return mutate

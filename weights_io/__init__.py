"""Reading and writing converted networks (docs/format.md)."""
from evsim.weights_io.hdf5 import (
    DEFAULT_LIMITS,
    FORMAT_NAME,
    FORMAT_VERSION,
    FormatLimits,
    read_network,
    write_network,
)

__all__ = ["DEFAULT_LIMITS", "FORMAT_NAME", "FORMAT_VERSION", "FormatLimits", "read_network", "write_network"]

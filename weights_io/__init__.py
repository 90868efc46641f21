"""Reading and writing converted networks (docs/format.md); the exporter (export.py) and the ANN's activations
for the counts of spikes of inactivated neurons (activity.py) need torch."""
from evsim.weights_io.activity import ann_signs
from evsim.weights_io.spikingjelly import from_spikingjelly
from evsim.weights_io.hdf5 import (
    DEFAULT_LIMITS,
    FORMAT_NAME,
    FORMAT_VERSION,
    FormatLimits,
    read_network,
    write_network,
)

__all__ = ["DEFAULT_LIMITS", "ann_signs", "from_spikingjelly", "FORMAT_NAME", "FORMAT_VERSION", "FormatLimits", "read_network", "write_network"]

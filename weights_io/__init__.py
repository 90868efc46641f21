"""Reading and writing converted networks (docs/format.md), NIR graphs in and out (docs/nir.md); the exporter
(export.py) and the ANN's activations for the counts of spikes of inactivated neurons (activity.py) need torch;
importing a SpikingJelly model (spikingjelly.py) needs spikingjelly too."""
from evsim.weights_io.activity import ann_signs
from evsim.weights_io.hdf5 import (
    DEFAULT_LIMITS,
    FORMAT_NAME,
    FORMAT_VERSION,
    FormatLimits,
    read_network,
    write_network,
)
from evsim.weights_io.nir import from_nir, to_nir  # the nir package is imported only when they are called
from evsim.weights_io.spikingjelly import from_spikingjelly  # torch and spikingjelly: only when it is called

__all__ = ["DEFAULT_LIMITS", "ann_signs", "FORMAT_NAME", "FORMAT_VERSION", "FormatLimits", "from_nir",
           "from_spikingjelly", "read_network", "to_nir", "write_network"]

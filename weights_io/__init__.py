"""Reading and writing converted networks (docs/format.md); the exporter (export.py) and the ANN's activations
for the counts of spikes of inactivated neurons (activity.py) need torch; importing a SpikingJelly model
(spikingjelly.py) needs spikingjelly too."""
from evsim.weights_io.activity import ann_signs
from evsim.weights_io.hdf5 import (
    DEFAULT_LIMITS,
    FORMAT_NAME,
    FORMAT_VERSION,
    FormatLimits,
    read_network,
    write_network,
)
from evsim.weights_io.spikingjelly import from_spikingjelly

__all__ = ["DEFAULT_LIMITS", "ann_signs", "from_spikingjelly", "FORMAT_NAME", "FORMAT_VERSION", "FormatLimits",
           "read_network", "write_network"]

"""evsim: event-driven simulation of spiking networks converted from trained ANNs."""
from importlib.metadata import PackageNotFoundError, version

from evsim.errors import EvsimError, FormatError, SimulationInputError
from evsim.network import AnnInfo, Network, Population, Projection, Samples
from evsim.simulate import RunOptions, Simulator

try:
    __version__ = version("evsim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AnnInfo", "EvsimError", "FormatError", "Network", "Population", "Projection", "RunOptions",
    "Samples", "SimulationInputError", "Simulator", "__version__",
]

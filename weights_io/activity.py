"""The ANN's activations, population by population: what the counts of spikes of inactivated neurons compare with.

`ann_signs(model, network)` gives a function that `Simulator.run(...,
ann_signs=...)` calls on each batch of inputs: it runs the folded ANN
(weights_io.trace, the exporter's own tracing) on the batch and returns, for
every hidden population of `network` that stands for an ANN layer, that
layer's activations (after its activation function). Computed batch by
batch, never stored in the network file: recording them, or the spike
trains, for a whole test set would take gigabytes.

A population stands for the layer of its name (the exporter names them so);
synchronous neurons on a residual shortcut (bsnn) stand for their source,
whose identity they are in the ANN. Relays (a max-pool's output) are left
out: their events are their source's, passed on.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from evsim import kinds
from evsim.errors import ExportError
from evsim.network import Network
from evsim.weights_io.trace import run_layers, torch_module, trace_model


def ann_signs(model, network: Network) -> Callable[[np.ndarray], dict]:
    """A function of a batch of inputs [b, *input shape]: {hidden population: the ANN's activations [b, *shape]}."""
    torch = torch_module()
    example = torch.zeros((2, *network.input.shape), dtype=torch.float32)
    was_training = model.training
    model.eval()
    try:
        layers = trace_model(model, example)
    finally:
        model.train(was_training)
    sources = _stand_ins(network, {layer.name for layer in layers})
    if not sources:
        raise ExportError("ann_signs: no hidden population of the network is named after a layer of the model "
                          "(was the network exported from this model?)")

    def signs(inputs: np.ndarray) -> dict:
        with torch.no_grad():
            acts = run_layers(layers, torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
        return {pop: acts[layer].numpy() for pop, layer in sources.items()}

    return signs


def _stand_ins(network: Network, layer_names: set) -> dict:
    """{hidden population: the ANN layer whose activations it stands for}."""
    sources = {}
    for pop in network.populations:
        if not pop.spec.membrane or pop.name == network.output:
            continue
        if pop.name in layer_names:
            sources[pop.name] = pop.name
            continue
        incoming = network.incoming(pop.name)  # synchronous neurons: one identity from what they synchronise
        if len(incoming) == 1 and incoming[0].kind == kinds.IDENTITY.name and incoming[0].source in sources:
            sources[pop.name] = sources[incoming[0].source]
    return sources

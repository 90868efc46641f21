"""Window geometry of convolutions and pools (PyTorch's conventions), shared by the engine and the exporter.

Small, pure NumPy: the output size of a window along one axis, and which
outputs (and kernel taps) each input position reaches.
"""
from __future__ import annotations

import numpy as np


def conv_output_hw(hw_in: tuple[int, int], kernel: tuple[int, int], stride, padding, dilation=(1, 1)) -> tuple[int, int]:
    """Output height and width of a convolution or pool (PyTorch, no ceil mode)."""
    return tuple(
        (hw_in[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1 for i in range(2)
    )


def axis_hits(n_in: int, pad: int, k: int, dilation: int, stride: int, n_out: int) -> np.ndarray:
    """Along one axis, for each input position: the outputs whose window holds it and the tap that reaches it.

    Row `pos` is `[hits, out_0, tap_0, out_1, tap_1, ...]` (width 1 + 2k).
    Borders are exact: padding positions and outputs past the edge never
    appear. Precomputed so that delivering an event divides nothing.
    """
    table = np.zeros((n_in, 1 + 2 * k), dtype=np.int64)
    for pos in range(n_in):
        hits = 0
        for tap in range(k):
            num = pos + pad - tap * dilation
            if num >= 0 and num % stride == 0 and num // stride < n_out:
                table[pos, 1 + 2 * hits:3 + 2 * hits] = num // stride, tap
                hits += 1
        table[pos, 0] = hits
    return table


def window_pairs(size: int, kernel: int, stride: int, padding: int) -> int:
    """Along one axis of a pool: the number of (output position, in-bounds input position) pairs."""
    outputs = conv_output_hw((size, 1), (kernel, 1), (stride, 1), (padding, 0))[0]
    return int(axis_hits(size, padding, kernel, 1, stride, outputs)[:, 0].sum())

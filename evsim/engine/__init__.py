"""The event-driven engine: the flat plan a network is lowered to, its jitted kernels and the scheduler.

- `plan.py`: lowering (kind codes, one record per projection, the int and float pools);
- `delivery.py`: one kernel per projection kind, and the spiking max gate;
- `neurons.py`: integrate (analog current, bias) and fire (coefficient, reset by subtraction);
- `encoders.py`: the Bernoulli and phase encoders, the analog input's current;
- `scheduler.py`: `run_sample` (one sample, T steps, in the slots of docs/semantics.md) and `run_batch`;
- `jit.py`: the one jit setting, and the guard that drops a stale Numba cache.
"""

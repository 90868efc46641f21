"""Names and slots of the exact counts (docs/accounting.md). One definition, used by every engine."""

#: Per population and step. `sin_events` / `sin_mass`: the events (and their |c|) of neurons the ANN did not
#: activate on that sample, or whose sign disagrees with the ANN's (spikes of inactivated neurons, BSNN III-C);
#: zero unless the run was given the ANN's activation signs.
POPULATION_COUNTERS = ("events", "mass", "events_A", "events_B", "mass_A", "mass_B", "bias_ops", "neuron_updates",
                       "sin_events", "sin_mass")
#: Per population and step, real-valued (float64; exact for the dyadic values c * S_k that events carry).
#: `sin_value`: the sum of |c * S_k| over those events.
POPULATION_VALUES = ("sin_value",)
#: Per projection and step. `input_macs` counts nonzero analog pixels only (the accounting's definition);
#: `input_macs_dense` counts every pixel, zero or not, for comparison.
PROJECTION_COUNTERS = ("ac_ops", "scaled_ops", "pool_ops", "input_macs", "input_macs_dense")

(EVENTS, MASS, EVENTS_A, EVENTS_B, MASS_A, MASS_B, BIAS_OPS, NEURON_UPDATES, SIN_EVENTS,
 SIN_MASS) = range(len(POPULATION_COUNTERS))
(SIN_VALUE,) = range(len(POPULATION_VALUES))
AC_OPS, SCALED_OPS, POOL_OPS, INPUT_MACS, INPUT_MACS_DENSE = range(len(PROJECTION_COUNTERS))

#: Event tags: plain events, and the A and B units of a bif pair.
TAG_NONE, TAG_A, TAG_B = 0, 1, 2
#: The ANN's activation sign of a neuron, as the engine is given it: -1, 0, +1, or NOT_COUNTED (no SIN count).
NOT_COUNTED = 2

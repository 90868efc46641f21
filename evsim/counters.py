"""Names and slots of the exact counts (docs/accounting.md). One definition, used by every engine."""

#: Per population and step.
POPULATION_COUNTERS = ("events", "mass", "events_A", "events_B", "mass_A", "mass_B", "bias_ops", "neuron_updates")
#: Per projection and step. `input_macs` counts nonzero analog pixels only (the accounting's definition);
#: `input_macs_dense` counts every pixel, zero or not, for comparison.
PROJECTION_COUNTERS = ("ac_ops", "scaled_ops", "pool_ops", "input_macs", "input_macs_dense")

EVENTS, MASS, EVENTS_A, EVENTS_B, MASS_A, MASS_B, BIAS_OPS, NEURON_UPDATES = range(len(POPULATION_COUNTERS))
AC_OPS, SCALED_OPS, POOL_OPS, INPUT_MACS, INPUT_MACS_DENSE = range(len(PROJECTION_COUNTERS))

#: Event tags: plain events, and the A and B units of a bif pair.
TAG_NONE, TAG_A, TAG_B = 0, 1, 2

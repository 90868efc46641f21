"""NIR import and export (weights_io/nir.py, docs/nir.md): the bundled CNN read back by the nir package, round trips,
a graph in another tool's conventions against a NumPy loop of NIR's equations, and every refusal by name."""
import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

nir = pytest.importorskip("nir")  # the nir extra; CI installs it

from evsim.cli.main import main  # noqa: E402
from evsim.errors import NirError  # noqa: E402
from evsim.network import Network, Population, Projection  # noqa: E402
from evsim.simulate import simulate  # noqa: E402
from evsim.weights_io import read_network, write_network  # noqa: E402
from evsim.weights_io import from_nir, to_nir  # noqa: E402

BUNDLED = "examples/mnist_cnn.h5"


def dyadic(rng, shape, step=2**-4, low=-1.0, high=1.0):
    return np.round(rng.uniform(low, high, shape) / step) * step


def run(network, inputs, T=24):
    result = simulate(network, inputs, timesteps=T, record_spikes=True, record_counts=True, dtype="float64")
    return result, result.as_arrays()


# -- export of the bundled CNN -------------------------------------------------------


@pytest.fixture(scope="module")
def bundled(tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "cnn.nir"
    to_nir(BUNDLED, path, reset_to_zero=True)
    return read_network(BUNDLED), path


def test_bundled_cnn_exports_as_nir_the_nir_package_reads(bundled):
    _, path = bundled
    graph = nir.read(path)
    found = {name: (type(node).__name__, tuple(np.shape(getattr(node, field)))) for name, node in graph.nodes.items()
             for field in ("weight", "r") if hasattr(node, field)}
    assert found == {
        "conv1.conv2d": ("Conv2d", (12, 1, 5, 5)), "conv1": ("IF", (12, 24, 24)),
        "conv2.conv2d": ("Conv2d", (64, 12, 10, 10)), "conv2": ("IF", (64, 8, 8)),
        "fc.dense": ("Affine", (10, 4096)), "fc": ("I", (10,)),
    }
    assert type(graph.nodes["input"]).__name__ == "Input" and list(graph.nodes["input"].output_type["output"]) == [1, 28, 28]
    assert type(graph.nodes["fc.dense.flatten"]).__name__ == "Flatten" and type(graph.nodes["output"]).__name__ == "Output"
    assert graph.edges == [("input", "conv1.conv2d"), ("conv1.conv2d", "conv1"), ("conv1", "conv2.conv2d"),
                           ("conv2.conv2d", "conv2"), ("conv2", "fc.dense.flatten"), ("fc.dense.flatten", "fc.dense"),
                           ("fc.dense", "fc"), ("fc", "output")]
    conv1 = graph.nodes["conv1"]
    assert np.all(conv1.v_reset == 0) and conv1.metadata == {"evsim": {"reset": "subtract", "fire_when": "ge"}}


def test_bundled_cnn_round_trip_is_the_same_network_with_the_same_results(bundled, tmp_path):
    original, path = bundled
    back = from_nir(path, tmp_path / "back.h5")
    assert back.digest() == original.digest()
    assert read_network(tmp_path / "back.h5").digest() == original.digest()
    inputs = original.samples.inputs[:6]
    arrays_a, arrays_b = run(original, inputs, 16)[1], run(back, inputs, 16)[1]
    assert arrays_a.keys() == arrays_b.keys() and len(arrays_a) > 20  # predictions, every count, every spike train
    assert all(np.array_equal(arrays_a[k], arrays_b[k]) for k in arrays_a)


def test_reset_by_subtraction_is_refused_without_the_option():
    with pytest.raises(NirError, match=r"population 'conv1' resets by subtraction, which NIR cannot express .*reset_to_zero"):
        to_nir(BUNDLED)


# -- round trip of a version-3 network with a skip connection and a pool -----------


def v3_network(rng) -> Network:
    pops = (
        Population("in", "input", (1, 4, 4), 0),
        Population("c", "if", (2, 4, 4), 1, theta_pos=np.array([1.0, 0.5]), reset="value", fire_when="gt",
                   v_reset=np.array([0.25, -0.125]), bias=np.array([0.0625, 0.0])),
        Population("p", "if", (2, 2, 2), 2, theta_pos=np.array(0.5), reset="value", fire_when="gt"),
        Population("h", "if", (2, 2, 2), 3, theta_pos=np.array(0.75), reset="value", fire_when="gt"),
        Population("out", "readout", (3,), 4, bias=np.array([0.0, 0.125, -0.125])),
    )
    projs = (
        Projection("conv", "conv2d", "in", "c", weight=dyadic(rng, (2, 1, 3, 3)), padding=(1, 1)),
        Projection("pool", "avgpool2d", "c", "p", kernel=(2, 2), stride=(2, 2), scale=2.0),
        Projection("skip", "identity", "p", "h", scale=0.5),
        Projection("fc", "dense", "h", "out", weight=dyadic(rng, (3, 8))),
        Projection("fc_skip", "dense", "p", "out", weight=dyadic(rng, (3, 8))),
    )
    return Network(pops, projs, output="out")


def test_version_3_network_round_trips_without_the_option(tmp_path):
    net = v3_network(np.random.default_rng(0))
    graph = to_nir(net, tmp_path / "g.nir")
    assert {type(n).__name__ for n in graph.nodes.values()} == {"Input", "Conv2d", "IF", "AvgPool2d", "Scale", "Affine",
                                                               "Linear", "Flatten", "I", "Output"}
    assert graph.nodes["c"].metadata == {}  # NIR's own rules: nothing to record
    back = from_nir(tmp_path / "g.nir")
    assert back.digest() == net.digest()
    inputs = dyadic(np.random.default_rng(1), (4, 1, 4, 4), 2**-3, 0, 1).astype(np.float32)
    a, b = run(net, inputs)[1], run(back, inputs)[1]
    assert all(np.array_equal(a[k], b[k]) for k in a) and a["spikes/c/out/coef"].any()


# -- what export refuses, by name ---------------------------------------------------


def small(**changes) -> Network:
    pops = (Population("in", "input", (1, 2, 2), 0),
            Population("h", "if", (1, 2, 2), 1, theta_pos=np.array(1.0), reset="value", fire_when="gt"),
            Population("out", "readout", (2,), 2))
    projs = (Projection("c", "conv2d", "in", "h", weight=np.ones((1, 1, 1, 1))),
             Projection("fc", "dense", "h", "out", weight=np.ones((2, 4))))
    net = Network(pops, projs, output="out")
    if "pop" in changes:
        pops = tuple(dataclasses.replace(p, **changes["pop"]) if p.name == "h" else p for p in pops)
    if "proj" in changes:
        projs = changes["proj"]
        pops = tuple(dataclasses.replace(p, kind="relay", theta_pos=None, reset="subtract", fire_when="ge")
                     if p.name == "h" else p for p in pops)
    return net.replace(populations=pops, projections=projs)


REFUSED = [
    ("phase coding", {"pop": {"coding": "phase", "phase_period": 2}}, r"population 'h' uses phase coding"),
    ("bif pairs", {"pop": {"kind": "bif", "reset": "subtract", "fire_when": "ge"}}, r"population 'h' uses the bif model"),
    ("theta_neg", {"pop": {"theta_neg": np.array(-1.0)}}, r"population 'h' uses a negative threshold theta_neg"),
    ("augmented", {"pop": {"max_coeff": 3}}, r"population 'h' uses augmented coefficients \(max_coeff 3\)"),
    ("v_init", {"pop": {"v_init": np.array(0.5)}}, r"population 'h' uses a nonzero v_init"),
    ("bias onset", {"pop": {"bias_onset": 2}}, r"population 'h' uses a bias onset"),
    ("max-pool", {"proj": (Projection("mp", "maxpool2d", "in", "h", kernel=(1, 1)),
                           Projection("fc", "dense", "h", "out", weight=np.ones((2, 4))))},
     r"^projection 'mp' is a maxpool2d: a spiking max-pool has no NIR form$"),
]


@pytest.mark.parametrize("changes, message", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_export_refuses_what_nir_cannot_express(changes, message):
    to_nir(small())  # the base network exports
    with pytest.raises(NirError, match=message):
        to_nir(small(**changes), reset_to_zero=True)


def test_export_refuses_a_bias_no_nir_node_can_carry():
    """NIR puts biases on Affine and Conv2d nodes; a population fed only through a pool or a shortcut has none."""
    net = v3_network(np.random.default_rng(0))
    net = net.replace(populations=tuple(dataclasses.replace(p, bias=np.array(0.25)) if p.name == "h" else p
                                        for p in net.populations))
    with pytest.raises(NirError, match=r"population 'h' has a bias that no incoming projection can carry in NIR"):
        to_nir(net)


# -- what import refuses, by node and type ---------------------------------------------


def chain(middle: dict, edges=None) -> "nir.NIRGraph":
    nodes = {"in": nir.Input(input_type={"input": np.array([3])}), "fc": nir.Linear(weight=np.ones((3, 3))), **middle,
             "out": nir.Output(output_type={"output": np.array([3])})}
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=edges or list(zip(names, names[1:])), type_check=False)


ONES = np.ones(3)
UNSUPPORTED = [
    ("LIF", {"n": nir.LIF(tau=ONES, r=ONES, v_leak=0 * ONES, v_threshold=ONES)}, r"node 'n' is a LIF, a leaky neuron"),
    ("CubaLIF", {"n": nir.CubaLIF(tau_syn=ONES, tau_mem=ONES, r=ONES, v_leak=0 * ONES, v_threshold=ONES)},
     r"node 'n' is a CubaLIF"),
    ("LI", {"n": nir.LI(tau=ONES, r=ONES, v_leak=0 * ONES)}, r"node 'n' is a LI, a leaky integrator"),
    ("Delay", {"d": nir.Delay(delay=ONES), "n": nir.IF(r=ONES, v_threshold=ONES)}, r"node 'd' is a Delay"),
    ("per-element Scale", {"s": nir.Scale(scale=np.array([1.0, 2.0, 1.0])), "n": nir.IF(r=ONES, v_threshold=ONES)},
     r"node 's' is a Scale with per-element factors"),
]


@pytest.mark.parametrize("middle, message", [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED])
def test_import_names_the_node_and_type_it_cannot_represent(middle, message):
    with pytest.raises(NirError, match=message):
        from_nir(chain(middle))


def test_pools_and_uniform_scales_import_as_their_own_kinds():
    """SumPool2d is an average pool times kh * kw; a uniform Scale and dt * R multiply a projection's scale."""
    def graph(pool):
        nodes = {"in": nir.Input(input_type={"input": np.array([1, 4, 4])}),
                 "c": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                                 bias=np.zeros(2)),
                 "h": nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.ones((2, 4, 4))),
                 "pool": pool, "s": nir.Scale(scale=np.full((2, 2, 2), 0.5)),
                 "p": nir.IF(r=np.full((2, 2, 2), 2.0), v_threshold=np.ones((2, 2, 2))),
                 "out": nir.Output(output_type={"output": np.array([2, 2, 2])})}
        return nir.NIRGraph(nodes=nodes, edges=[("in", "c"), ("c", "h"), ("h", "pool"), ("pool", "s"), ("s", "p"),
                                                ("p", "out")])
    window = {"kernel_size": np.array([2, 2]), "stride": np.array([2, 2]), "padding": np.array([0, 0])}
    for pool, scale in ((nir.SumPool2d(**window), 4.0 * 0.5 * 0.25 * 2.0), (nir.AvgPool2d(**window), 0.5 * 0.25 * 2.0)):
        net = from_nir(graph(pool), dt=0.25)
        proj = next(q for q in net.projections if q.target == "p")
        assert (proj.kind, proj.kernel, proj.stride, proj.scale) == ("avgpool2d", (2, 2), (2, 2), scale)
        assert np.array_equal(net.projections[0].weight, np.full((2, 1, 1, 1), 0.25))  # dt * R folded into the conv


def test_import_refuses_a_recurrent_edge():
    graph = chain({"n": nir.IF(r=ONES, v_threshold=ONES), "back": nir.Linear(weight=np.eye(3))},
                  edges=[("in", "fc"), ("fc", "n"), ("n", "back"), ("back", "n"), ("n", "out")])
    with pytest.raises(NirError, match=r"recurrent edge: nodes n, back form a cycle"):
        from_nir(graph)


def test_import_refuses_an_output_fed_by_a_linear_node():
    with pytest.raises(NirError, match=r"node 'out' \(Output\) is fed by 'fc' \(Linear\); .*end the graph with an IF or I"):
        from_nir(chain({}))


def test_import_refuses_graphs_that_do_not_fit():
    wrong = chain({"n": nir.IF(r=ONES, v_threshold=ONES)})
    wrong.nodes["fc"] = nir.Linear(weight=np.ones((3, 5)))
    with pytest.raises(NirError, match=r"node 'fc' \(Linear\) has weight of shape \[3, 5\]; it must be \[out, in\] with in = 3"):
        from_nir(wrong)
    with pytest.raises(NirError, match=r"node 'n' \(IF\) has v_threshold <= 0 \(found 0.0\)"):
        from_nir(chain({"n": nir.IF(r=ONES, v_threshold=np.array([1.0, 0.0, 1.0]))}))
    with pytest.raises(NirError, match=r"edge \('fc', 'ghost'\) names 'ghost', which is not a node of the graph"):
        from_nir(chain({"n": nir.IF(r=ONES, v_threshold=ONES)}, edges=[("in", "fc"), ("fc", "ghost"), ("fc", "n"),
                                                                      ("n", "out")]))
    with pytest.raises(NirError, match=r"reads a nir.NIRGraph or a .nir file, not a dict"):
        from_nir({"nodes": {}})


def test_import_of_a_missing_or_broken_file_is_one_clear_error(tmp_path):
    with pytest.raises(NirError, match="no such file"):
        from_nir(tmp_path / "absent.nir")
    (tmp_path / "bad.nir").write_text("not hdf5")
    with pytest.raises(NirError, match=r"bad.nir: not a NIR graph"):
        from_nir(tmp_path / "bad.nir")


# -- a graph in Sinabs' conventions against NIR's equations in NumPy -------------------


def sinabs_style_graph(rng) -> "nir.NIRGraph":
    """A small CNN in the conventions of Sinabs' to_nir (sinabs/nir.py): its IAF layers as IF with r = 1 and a
    per-neuron v_threshold, Conv2d and Affine with biases, SumPool2d between convolutions, Flatten; with a skip
    connection (node 1's spikes reach the output twice, directly and through the pool), and, beyond what Sinabs
    writes, per-neuron resistances and nonzero v_reset to exercise those rules."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "0": nir.Conv2d(input_shape=(6, 6), weight=dyadic(rng, (2, 1, 3, 3), 2**-3), stride=1, padding=1, dilation=1,
                        groups=1, bias=np.array([0.125, -0.0625])),
        "1": nir.IF(r=np.ones((2, 6, 6)), v_threshold=np.full((2, 6, 6), 0.5), v_reset=np.zeros((2, 6, 6))),
        "2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "3": nir.Conv2d(input_shape=(3, 3), weight=dyadic(rng, (3, 2, 2, 2), 2**-3), stride=1, padding=0, dilation=1,
                        groups=1, bias=np.zeros(3)),
        "4": nir.IF(r=np.repeat([1.0, 0.5, 2.0], 4).reshape(3, 2, 2), v_threshold=np.full((3, 2, 2), 0.75),
                    v_reset=np.full((3, 2, 2), 0.125)),
        "5": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0),
        "6": nir.Affine(weight=dyadic(rng, (4, 12), 2**-3), bias=dyadic(rng, (4,), 2**-4, -0.25, 0.25)),
        "skip": nir.Flatten(input_type={"input": np.array([2, 6, 6])}, start_dim=0),
        "skip_fc": nir.Linear(weight=dyadic(rng, (4, 72), 2**-4, -0.25, 0.25)),
        "7": nir.IF(r=np.array([1.0, 0.5, 1.0, 2.0]), v_threshold=np.full(4, 1.0), v_reset=np.array([0.0, 0.25, 0, -0.25])),
        "output": nir.Output(output_type={"output": np.array([4])}),
    }
    edges = [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "4"), ("4", "5"), ("5", "6"), ("6", "7"),
             ("1", "skip"), ("skip", "skip_fc"), ("skip_fc", "7"), ("7", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def conv(x, weight, bias, stride=1, padding=0):
    """PyTorch's Conv2d (cross-correlation, zero padding), one sample, by loops."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    cout, cin, kh, kw = weight.shape
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    y = np.zeros((cout, ho, wo))
    for o in range(cout):
        for i in range(ho):
            for j in range(wo):
                y[o, i, j] = np.sum(x[:, i * stride:i * stride + kh, j * stride:j * stride + kw] * weight[o]) + bias[o]
    return y


def nir_equations(graph, x, T, dt=1.0):
    """Forward Euler of NIR's equations, node by node: I = W s + b; IF: v += dt R I, spike where v > v_threshold, then
    v = v_reset. Spikes reach their targets in the step they are emitted. Returns each IF's spikes [T, *shape]."""
    n = graph.nodes
    v = {k: np.zeros(np.shape(n[k].r)) for k in ("1", "4", "7")}
    spikes = {k: [] for k in v}

    def fire(k, current):
        v[k] = v[k] + dt * n[k].r * current
        s = v[k] > n[k].v_threshold
        v[k] = np.where(s, n[k].v_reset, v[k])
        spikes[k].append(s.astype(np.int64))
        return s.astype(np.float64)

    for _ in range(T):
        s1 = fire("1", conv(x, n["0"].weight, n["0"].bias, padding=1))
        pooled = s1.reshape(2, 3, 2, 3, 2).sum(axis=(2, 4))
        s4 = fire("4", conv(pooled, n["3"].weight, n["3"].bias))
        fire("7", n["6"].weight @ s4.reshape(-1) + n["6"].bias + n["skip_fc"].weight @ s1.reshape(-1))
    return {k: np.array(s) for k, s in spikes.items()}


def test_a_sinabs_style_graph_runs_as_nir_equations_say(tmp_path):
    rng = np.random.default_rng(3)
    graph = sinabs_style_graph(rng)
    nir.write(tmp_path / "g.nir", graph)
    network = from_nir(tmp_path / "g.nir", tmp_path / "g.h5")
    kinds = {q.name: q.kind for q in read_network(tmp_path / "g.h5").projections}
    assert kinds == {"0": "conv2d", "3": "sparse", "6": "dense", "skip_fc": "dense"}  # pool then conv: composed
    inputs = dyadic(rng, (3, 1, 6, 6), 2**-2, 0, 1).astype(np.float32)
    T = 20
    _, arrays = run(network, inputs, T)
    exact = 0
    for sample, x in enumerate(inputs.astype(np.float64)):
        expected = nir_equations(graph, x, T)
        for node, trains in expected.items():
            assert np.array_equal(arrays[f"spikes/{node}/out/coef"][sample], trains), (sample, node)
            exact += int(trains.sum())
    assert exact > 50  # the trains are not empty
    # and NIR's strict threshold matters here: fired at the threshold (ge), the trains differ
    ge = network.replace(populations=tuple(dataclasses.replace(p, fire_when="ge") if p.kind == "if" else p
                                           for p in network.populations))
    _, at_threshold = run(ge, inputs, T)
    assert any(not np.array_equal(at_threshold[f"spikes/{node}/out/coef"], arrays[f"spikes/{node}/out/coef"])
               for node in ("1", "4", "7"))


# -- the command line -----------------------------------------------------------------


def test_cli_export_and_import(tmp_path):
    runner = CliRunner()
    refused = runner.invoke(main, ["export-nir", BUNDLED, "-o", str(tmp_path / "g.nir")])
    assert refused.exit_code == 1 and "resets by subtraction" in refused.output and "Traceback" not in refused.output
    done = runner.invoke(main, ["export-nir", BUNDLED, "-o", str(tmp_path / "g.nir"), "--reset-to-zero"])
    assert done.exit_code == 0, done.output
    back = runner.invoke(main, ["import-nir", str(tmp_path / "g.nir"), "-o", str(tmp_path / "w.h5")])
    assert back.exit_code == 0, back.output
    assert read_network(tmp_path / "w.h5").digest() == read_network(BUNDLED).digest()
    write_network(tmp_path / "copy.h5", read_network(tmp_path / "w.h5"))

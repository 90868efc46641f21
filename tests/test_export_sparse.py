"""Pruned Linear layers export as sparse projections: the same spikes, synaptic ops only over the kept weights."""
import numpy as np
import pytest

from evsim.simulate import simulate

torch = pytest.importorskip("torch")
nn = torch.nn

from evsim.errors import ExportError  # noqa: E402
from evsim.weights_io.export import convert_model  # noqa: E402


def pruned_mlp(amount):
    from torch.nn.utils import prune

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 10))
    for layer in (model[1], model[3], model[5]):
        prune.l1_unstructured(layer, "weight", amount=amount)
        prune.remove(layer, "weight")
    return model.eval(), torch.rand(40, 1, 8, 8)


def test_a_pruned_mlp_becomes_sparse_with_the_same_spikes_and_only_kept_synapses_counted():
    model, x = pruned_mlp(0.9)
    sparse, dense = convert_model(model, calibration=x), convert_model(model, calibration=x, sparse_below=0)
    assert [q.kind for q in sparse.projections] == ["sparse"] * 3 and [q.kind for q in dense.projections] == ["dense"] * 3
    kept = [int(np.count_nonzero(layer.weight.detach())) for layer in (model[1], model[3], model[5])]
    assert [q.indices.size for q in sparse.projections] == kept
    assert [layer["sparse"]["kept"] for layer in sparse.meta["layers"] if "sparse" in layer] == kept
    run = dict(timesteps=32, record_spikes=True, record_counts=True, dtype="float64")
    a, b = simulate(sparse, x.numpy(), **run), simulate(dense, x.numpy(), **run)
    for key, (coef, _) in b.spikes.items():  # adding a zero weight changes nothing: identical trains
        np.testing.assert_array_equal(a.spikes[key][0], coef)
    np.testing.assert_array_equal(a.pred, b.pred)
    # every event now reaches only its neuron's kept weights
    for q, proj in enumerate(sparse.projections[1:], start=1):
        coef = a.spikes[(proj.source, "out")][0].reshape(len(x), 32, -1)
        fan_out = np.diff(proj.indptr)
        assert a.proj_counts[:, :, q, 0].sum() == ((coef != 0) * fan_out).sum()
    assert a.totals()["ac_ops"] < 0.2 * b.totals()["ac_ops"]
    assert sparse.meta["ann_macs_kept"] == sum(kept) < sparse.ann.macs == 64 * 48 + 48 * 32 + 32 * 10


def test_dense_layers_stay_dense_and_the_threshold_is_checked():
    model, x = pruned_mlp(0.5)
    assert [q.kind for q in convert_model(model, calibration=x).projections] == ["dense"] * 3
    assert [q.kind for q in convert_model(model, calibration=x, sparse_below=0.6).projections] == ["sparse"] * 3
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ExportError, match="sparse_below must be a fraction"):
            convert_model(model, calibration=x, sparse_below=bad)

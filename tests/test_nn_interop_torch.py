"""PyTorch interop (optional: skipped without torch): a torch state_dict, converted with
``.numpy()``, loads into the equivalent tinylm modules and gives the same outputs and
gradients in float64; tinylm's state_dict loads back into torch; the reprs and the
load_state_dict error messages read the same."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm import nn

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.lesson03

TOL = 1e-10


def pairs():
    """(name, torch module, tinylm module, input maker) for each layer checked."""
    tn = torch.nn
    ids = np.array([[0, 3, 3, 9], [1, 0, 2, 3]])
    return [
        ("Linear", tn.Linear(5, 3), nn.Linear(5, 3), lambda r: r.standard_normal((2, 4, 5))),
        ("Linear no bias", tn.Linear(5, 3, bias=False), nn.Linear(5, 3, bias=False),
         lambda r: r.standard_normal((4, 5))),
        ("Embedding", tn.Embedding(10, 4), nn.Embedding(10, 4), lambda r: ids),
        ("Embedding padding", tn.Embedding(10, 4, padding_idx=3),
         nn.Embedding(10, 4, padding_idx=3), lambda r: ids),
        ("LayerNorm", tn.LayerNorm((2, 5)), nn.LayerNorm((2, 5)),
         lambda r: r.standard_normal((3, 2, 5))),
        ("RMSNorm", tn.RMSNorm(5), nn.RMSNorm(5), lambda r: r.standard_normal((3, 5))),
        ("RMSNorm eps", tn.RMSNorm(5, eps=1e-3), nn.RMSNorm(5, eps=1e-3),
         lambda r: r.standard_normal((3, 5)) * 0.05),
        ("Sequential", tn.Sequential(tn.Embedding(10, 6), tn.LayerNorm(6), tn.Linear(6, 8),
                                     tn.GELU(), tn.RMSNorm(8), tn.Linear(8, 10)),
         nn.Sequential(nn.Embedding(10, 6), nn.LayerNorm(6), nn.Linear(6, 8), nn.GELU(),
                       nn.RMSNorm(8), nn.Linear(8, 10)), lambda r: ids),
    ]


def _perturb(tm):
    """Move the torch parameters off their initial values (norm weights start at 1)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in tm.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _run_torch(tm, x):
    xt = torch.from_numpy(x)
    tm.zero_grad()
    y = tm(xt)
    (y * y).sum().backward()
    return y.detach().numpy(), {k: p.grad.numpy() for k, p in tm.named_parameters()
                                if p.grad is not None}


def _run_tinylm(m, x):
    m.zero_grad()
    y = m(tinylm.tensor(x))
    (y * y).sum().backward()
    return y.detach().numpy(), {k: p.grad.numpy() for k, p in m.named_parameters()
                                if p.grad is not None}


@pytest.mark.parametrize(("name", "tm", "m", "make"), pairs(), ids=[p[0] for p in pairs()])
def test_torch_state_dict_loads_into_tinylm_with_identical_outputs(name, tm, m, make):
    tm = tm.double()
    _perturb(tm)
    m.double()
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    assert list(sd) == list(m.state_dict())  # the same names, in the same order
    assert m.load_state_dict(sd) == ([], [])
    x = make(np.random.default_rng(0))
    yt, gt = _run_torch(tm, x)
    y, g = _run_tinylm(m, x)
    np.testing.assert_allclose(y, yt, rtol=TOL, atol=TOL)
    assert list(g) == list(gt)
    for k in g:
        np.testing.assert_allclose(g[k], gt[k], rtol=TOL, atol=TOL, err_msg=k)


@pytest.mark.parametrize(("name", "tm", "m", "make"), pairs(), ids=[p[0] for p in pairs()])
def test_tinylm_state_dict_loads_back_into_torch(name, tm, m, make):
    tinylm.manual_seed(1)
    tm = tm.double()
    m.double()
    for p in m.parameters():  # off the initial values, which the two may share
        p.data += 0.1 * np.random.default_rng(2).standard_normal(p.shape)
    res = tm.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                              for k, v in m.state_dict().items()})
    assert not res.missing_keys and not res.unexpected_keys
    x = make(np.random.default_rng(3))
    np.testing.assert_allclose(_run_tinylm(m, x)[0], _run_torch(tm, x)[0], rtol=TOL, atol=TOL)


def test_float32_state_dict_round_trip_is_exact():
    tm = torch.nn.Linear(4, 3)
    m = nn.Linear(4, 3)
    m.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    for k, v in m.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v.numpy(), tm.state_dict()[k].numpy())


def test_reprs_read_the_same():
    tn = torch.nn
    for tm, m in [
        (tn.Linear(4, 2), nn.Linear(4, 2)),
        (tn.Embedding(10, 3, padding_idx=-1), nn.Embedding(10, 3, padding_idx=-1)),
        (tn.LayerNorm(4, bias=False), nn.LayerNorm(4, bias=False)),
        (tn.RMSNorm([2, 3]), nn.RMSNorm([2, 3])),
        (tn.Dropout(0.1), nn.Dropout(0.1)),
        (tn.Sequential(tn.Linear(4, 8), tn.ReLU(), tn.Sequential(tn.Tanh(), tn.Softmax(1)),
                       tn.GELU("tanh"), tn.Sigmoid()),
         nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Tanh(), nn.Softmax(1)),
                       nn.GELU("tanh"), nn.Sigmoid())),
    ]:
        assert repr(m) == repr(tm)


def test_load_errors_read_like_pytorchs():
    bad = {"0.weight": np.zeros((3, 4)), "extra": np.zeros(1)}
    with pytest.raises(RuntimeError) as te:
        torch.nn.Sequential(torch.nn.Linear(4, 2)).load_state_dict(
            {k: torch.from_numpy(v) for k, v in bad.items()})
    with pytest.raises(RuntimeError) as e:
        nn.Sequential(nn.Linear(4, 2)).load_state_dict(bad)
    torch_msg = str(te.value).replace("torch.Size([3, 4])", "(3, 4)").replace(
        "torch.Size([2, 4])", "(2, 4)")
    assert str(e.value) == torch_msg

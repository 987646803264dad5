"""PyTorch as an oracle for the recurrent layers (skipped without torch): the same weights
loaded into ``torch.nn.RNN/LSTM/GRU`` and their cells give the same outputs, final
states, input, initial-state and weight gradients, in float64 to 1e-10, over
batch_first both ways, 1 and 2 layers, initial state given or not, unbatched input,
bias=False and relu; state dicts load both ways."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
from tinylm import nn

torch = pytest.importorskip("torch")

TOL = 1e-10
L06, L07, L08 = pytest.mark.lesson06, pytest.mark.lesson07, pytest.mark.lesson08
MARK = {"RNN": L06, "LSTM": L07, "GRU": L08, "RNNCell": L06, "LSTMCell": L07, "GRUCell": L08}

OPTIONS = [
    ("plain", {}, "batched", True),
    ("no state", {}, "batched", False),
    ("batch_first", {"batch_first": True}, "batched", True),
    ("batch_first, no state", {"batch_first": True}, "batched", False),
    ("2 layers", {"num_layers": 2}, "batched", True),
    ("2 layers, batch_first, no state", {"num_layers": 2, "batch_first": True}, "batched",
     False),
    ("bias=False", {"bias": False}, "batched", True),
    ("unbatched", {}, "unbatched", True),
    ("unbatched, 2 layers, no state", {"num_layers": 2}, "unbatched", False),
    ("2 layers, dropout in eval mode", {"num_layers": 2, "dropout": 0.3}, "batched", True),
]


def layer_cases():
    out = []
    for kind in ("RNN", "LSTM", "GRU"):
        extra = [("relu", {"nonlinearity": "relu", "num_layers": 2}, "batched", True)] \
            if kind == "RNN" else []
        for name, kw, mode, given in OPTIONS + extra:
            out.append(pytest.param(kind, kw, mode, given, id=f"{kind}-{name}",
                                    marks=MARK[kind]))
    return out


def to_torch(m, kind, **kw):
    """A torch module of the same configuration holding tinylm module m's weights."""
    tm = getattr(torch.nn, kind)(m.input_size, m.hidden_size, dtype=torch.float64, **kw)
    tm.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                        for k, v in m.state_dict().items()})
    return tm


def leaves(rng, shape):
    a = rng.standard_normal(shape)
    return tinylm.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def flat(x):
    return list(x) if isinstance(x, tuple) else [x]


def close(a, b, what):
    a = a.detach().numpy() if isinstance(a, tinylm.Tensor) else a
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else b
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=what)


@pytest.mark.parametrize(("kind", "kw", "mode", "given"), layer_cases())
def test_layers_match_pytorch(kind, kw, mode, given):
    rng = np.random.default_rng(0)
    T, B, I, H = 6, 3, 4, 5
    L = kw.get("num_layers", 1)
    tinylm.manual_seed(0)
    m = getattr(nn, kind)(I, H, dtype=np.float64, **kw)
    tm = to_torch(m, kind, **kw)
    if kw.get("dropout"):
        m.eval()
        tm.eval()
    batched = mode == "batched"
    x_shape = ((B, T, I) if kw.get("batch_first") else (T, B, I)) if batched else (T, I)
    x, xt = leaves(rng, x_shape)
    s_shape = (L, B, H) if batched else (L, H)
    states = [leaves(rng, s_shape) for _ in range(2 if kind == "LSTM" else 1)] if given else []
    hx = None if not given else (tuple(s[0] for s in states) if kind == "LSTM"
                                 else states[0][0])
    hxt = None if not given else (tuple(s[1] for s in states) if kind == "LSTM"
                                  else states[0][1])
    out, hn = m(x, hx)
    outt, hnt = tm(xt, hxt)
    close(out, outt, "output")
    for a, b in zip(flat(hn), flat(hnt)):
        close(a, b, "final state")
    # a loss that uses the output and every final state, with distinct weights
    w_out = rng.standard_normal(outt.shape)
    w_states = [rng.standard_normal(s.shape) for s in flat(hnt)]
    loss = (out * tinylm.tensor(w_out)).sum()
    losst = (outt * torch.from_numpy(w_out)).sum()
    for a, b, w in zip(flat(hn), flat(hnt), w_states):
        loss = loss + (a * a * tinylm.tensor(w)).sum()
        losst = losst + (b * b * torch.from_numpy(w)).sum()
    loss.backward()
    losst.backward()
    close(x.grad, xt.grad, "input gradient")
    for (s, st), which in zip(states, ("h_0", "c_0")):
        close(s.grad, st.grad, f"{which} gradient")
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        close(p.grad, tp[name].grad, f"gradient of {name}")


def cell_cases():
    out = []
    for kind in ("RNNCell", "LSTMCell", "GRUCell"):
        extra = [("relu", {"nonlinearity": "relu"}, True, True)] if kind == "RNNCell" else []
        for name, kw, batched, given in [("state", {}, True, True), ("no state", {}, True, False),
                                         ("unbatched", {}, False, True),
                                         ("bias=False", {"bias": False}, True, True)] + extra:
            out.append(pytest.param(kind, kw, batched, given, id=f"{kind}-{name}",
                                    marks=MARK[kind]))
    return out


@pytest.mark.parametrize(("kind", "kw", "batched", "given"), cell_cases())
def test_cells_match_pytorch_over_a_loop(kind, kw, batched, given):
    """Five steps of a cell in a Python loop: the gradient flows back through every call."""
    rng = np.random.default_rng(1)
    B, I, H = 3, 4, 5
    tinylm.manual_seed(0)
    m = getattr(nn, kind)(I, H, dtype=np.float64, **kw)
    tm = to_torch(m, kind, **kw)
    xs = [leaves(rng, (B, I) if batched else (I,)) for _ in range(5)]
    n_states = 2 if kind == "LSTMCell" else 1
    states = [leaves(rng, (B, H) if batched else (H,)) for _ in range(n_states)] if given else []
    hx = None if not given else (tuple(s[0] for s in states) if n_states == 2 else states[0][0])
    hxt = None if not given else (tuple(s[1] for s in states) if n_states == 2
                                  else states[0][1])
    loss, losst = 0.0, 0.0
    for x, xt in xs:
        hx, hxt = m(x, hx), tm(xt, hxt)
        for a, b in zip(flat(hx), flat(hxt)):
            close(a, b, "step output")
            loss = loss + (a * a).sum()
            losst = losst + (b * b).sum()
    loss.backward()
    losst.backward()
    for x, xt in xs:
        close(x.grad, xt.grad, "input gradient")
    for s, st in states:
        close(s.grad, st.grad, "initial state gradient")
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        close(p.grad, tp[name].grad, f"gradient of {name}")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=MARK[k]) for k in MARK])
def test_state_dicts_load_both_ways(kind):
    kw = {} if "Cell" in kind else {"num_layers": 2}
    tm = getattr(torch.nn, kind)(3, 4, **kw)
    m = getattr(nn, kind)(3, 4, **kw)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    tm2 = getattr(torch.nn, kind)(3, 4, **kw)
    tm2.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in m.state_dict().items()})
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(tm2.state_dict()[k].numpy(), v.numpy())
    assert repr(m) == repr(tm)

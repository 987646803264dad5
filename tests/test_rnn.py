"""Recurrent layers: shapes and options as PyTorch, the fused recurrences against a
per-step graph of plain ops, truncated BPTT, 1,000-step sequences, the per-step
gradient recorder, dropout between layers, initialisation, errors.

Each test carries the lesson it grades: lesson06 (RNN, BPTT), lesson07 (LSTM),
lesson08 (GRU). The gradient checks themselves run in the registry sweep
(tests/test_registry_sweep.py, entries in tinylm/testing/registry_rnn.py).
"""

from __future__ import annotations

import inspect
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylm
from tinylm import nn
from tinylm.gradcheck import gradcheck, gradgradcheck
from tinylm.nn import rnn_cells
from tinylm.nn.rnn_cells import GRUFn, LSTMFn, RNNFn
from tinylm.ops import cat, chunk, matmul, sigmoid, stack, tanh

L06, L07, L08 = pytest.mark.lesson06, pytest.mark.lesson07, pytest.mark.lesson08
KINDS = [pytest.param("RNN", marks=L06), pytest.param("LSTM", marks=L07),
         pytest.param("GRU", marks=L08)]
CELLS = [pytest.param("RNNCell", marks=L06), pytest.param("LSTMCell", marks=L07),
         pytest.param("GRUCell", marks=L08)]
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3, "RNNCell": 1, "LSTMCell": 4, "GRUCell": 3}


# `device`: the shared cpu/cuda fixture of tests/conftest.py


def f64(rng, *shape, scale=1.0, requires_grad=False, device="cpu"):
    return tinylm.tensor(rng.standard_normal(shape) * scale, requires_grad=requires_grad,
                         device=device)


def make(kind, *args, **kw):
    tinylm.manual_seed(0)
    return getattr(nn, kind)(*args, dtype=np.float64, **kw)


def state(kind, h):
    return (h, h * 0.5) if kind == "LSTM" else h


def final_h(kind, hn):
    return hn[0] if kind == "LSTM" else hn


# ----------------------------------------------------------------------------- API


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_names_shapes_and_order_are_pytorchs(kind):
    m = make(kind, 3, 5, num_layers=2)
    G = GATES[kind] * 5
    assert [(k, tuple(v.shape)) for k, v in m.named_parameters()] == [
        ("weight_ih_l0", (G, 3)), ("weight_hh_l0", (G, 5)), ("bias_ih_l0", (G,)),
        ("bias_hh_l0", (G,)), ("weight_ih_l1", (G, 5)), ("weight_hh_l1", (G, 5)),
        ("bias_ih_l1", (G,)), ("bias_hh_l1", (G,))]
    assert [k for k, _ in make(kind, 3, 5, bias=False).named_parameters()] == [
        "weight_ih_l0", "weight_hh_l0"]


@pytest.mark.parametrize("kind", CELLS)
def test_cell_parameter_names(kind):
    G = GATES[kind] * 4
    m = make(kind, 3, 4)
    assert [(k, tuple(v.shape)) for k, v in m.named_parameters()] == [
        ("weight_ih", (G, 3)), ("weight_hh", (G, 4)), ("bias_ih", (G,)), ("bias_hh", (G,))]
    assert [k for k, _ in make(kind, 3, 4, bias=False).named_parameters()] == [
        "weight_ih", "weight_hh"]


@pytest.mark.parametrize("kind", KINDS + CELLS)
def test_initialisation_is_uniform_in_one_over_sqrt_hidden(kind):
    H = 64
    m = getattr(nn, kind)(32, H)
    bound = 1 / math.sqrt(H)
    values = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    assert values.dtype == np.float32
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.99 * bound and values.max() > 0.99 * bound
    n = values.size
    assert abs(values.mean()) < 5 * bound / math.sqrt(3 * n)
    assert abs(values.var() - bound**2 / 3) < 5 * bound**2 / 3 * math.sqrt(0.8 / n)
    tinylm.manual_seed(1)
    a = getattr(nn, kind)(3, 4).state_dict()
    tinylm.manual_seed(1)
    b = getattr(nn, kind)(3, 4).state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_output_and_state_shapes(kind, batch_first, num_layers):
    rng = np.random.default_rng(0)
    T, B, I, H = 5, 3, 4, 6
    m = make(kind, I, H, num_layers=num_layers, batch_first=batch_first)
    x = f64(rng, *((B, T, I) if batch_first else (T, B, I)))
    out, hn = m(x)
    assert out.shape == ((B, T, H) if batch_first else (T, B, H))
    for s in hn if kind == "LSTM" else (hn,):
        assert s.shape == (num_layers, B, H)
    # the output's last step is the last layer's final state
    last = out[:, -1] if batch_first else out[-1]
    np.testing.assert_array_equal(last.detach().numpy(),
                                  final_h(kind, hn)[-1].detach().numpy())
    # unbatched: (T, I) -> (T, H), states (num_layers, H); batch_first does not apply
    out1, hn1 = m(x[0] if batch_first else x[:, 0])
    assert out1.shape == (T, H)
    np.testing.assert_allclose(out1.detach().numpy(),
                               (out[0] if batch_first else out[:, 0]).detach().numpy(),
                               rtol=1e-13, atol=1e-13)
    for s in hn1 if kind == "LSTM" else (hn1,):
        assert s.shape == (num_layers, H)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_zero_equals_none_and_a_state_changes_the_output(kind):
    rng = np.random.default_rng(1)
    m = make(kind, 2, 3)
    x = f64(rng, 4, 2, 2)
    zero = tinylm.zeros(1, 2, 3, dtype=np.float64)
    a, _ = m(x)
    b, _ = m(x, state(kind, zero))
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    c, _ = m(x, state(kind, f64(rng, 1, 2, 3)))
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())


@pytest.mark.parametrize("kind", KINDS)
def test_float32_in_float32_out(kind):
    rng = np.random.default_rng(2)
    m = getattr(nn, kind)(3, 4)
    x = tinylm.tensor(rng.standard_normal((5, 2, 3)).astype(np.float32), requires_grad=True)
    out, hn = m(x)
    assert out.dtype == np.float32
    (out * out).sum().backward()
    assert x.grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in m.parameters())


@pytest.mark.parametrize("kind", CELLS)
def test_cells_equal_one_step_of_the_layer(kind):
    rng = np.random.default_rng(3)
    layer_kind = kind[:-4]
    cell, layer = make(kind, 3, 4), make(layer_kind, 3, 4)
    layer.load_state_dict({f"{k}_l0": v for k, v in cell.state_dict().items()})
    lstm = kind == "LSTMCell"
    x, h, c = f64(rng, 2, 3), f64(rng, 2, 4), f64(rng, 2, 4)
    got = cell(x, (h, c)) if lstm else (cell(x, h),)
    _, want = layer(x.reshape(1, 2, 3), (h.reshape(1, 2, 4), c.reshape(1, 2, 4)) if lstm
                    else h.reshape(1, 2, 4))
    for g, w in zip(got, want if lstm else (want,)):
        np.testing.assert_allclose(g.detach().numpy(), w[0].detach().numpy(), rtol=1e-14,
                                   atol=1e-14)
    # unbatched (I,) -> (H,)
    one = cell(x[0], (h[0], c[0])) if lstm else (cell(x[0], h[0]),)
    for a, b in zip(one, got):
        assert a.shape == (4,)
        np.testing.assert_allclose(a.detach().numpy(), b[0].detach().numpy(), rtol=1e-14)


@pytest.mark.parametrize("kind", KINDS + CELLS)
def test_repr_reads_like_pytorch(kind):
    if "Cell" in kind:
        assert repr(getattr(nn, kind)(3, 4, bias=False)) == f"{kind}(3, 4, bias=False)"
    else:
        m = getattr(nn, kind)(3, 4, num_layers=2, batch_first=True, dropout=0.5)
        assert repr(m) == f"{kind}(3, 4, num_layers=2, batch_first=True, dropout=0.5)"
    assert repr(getattr(nn, kind)(3, 4)) == f"{kind}(3, 4)"


@L06
def test_rnn_relu_and_repr():
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    rng = np.random.default_rng(4)
    m = make("RNN", 2, 3, nonlinearity="relu")
    out, _ = m(f64(rng, 5, 2, 2))
    assert (out.detach().numpy() >= 0).all() and (out.detach().numpy() == 0).any()


# ----------------------------------------------------------------------------- the math


def composed_lstm(xg, w_hh, b_hh, h, c):
    """The LSTM as a per-step graph of plain ops: autograd derives this one's gradient."""
    out = []
    for t in range(xg.shape[0]):
        i, f, g, o = chunk(xg[t] + matmul(h, w_hh.T) + b_hh, 4, dim=-1)
        c = sigmoid(f) * c + sigmoid(i) * tanh(g)
        h = sigmoid(o) * tanh(c)
        out.append(h)
    return cat([stack(out), c.reshape(1, *c.shape)], dim=0)


def composed_gru(xg, w_hh, b_hh, h):
    out = []
    for t in range(xg.shape[0]):
        xr, xz, xn = chunk(xg[t], 3, dim=-1)
        hr, hz, hn = chunk(matmul(h, w_hh.T) + b_hh, 3, dim=-1)
        r, z = sigmoid(xr + hr), sigmoid(xz + hz)
        h = (1 - z) * tanh(xn + r * hn) + z * h
        out.append(h)
    return stack(out)


def composed_rnn(xg, w_hh, b_hh, h, nonlinearity="tanh"):
    out = []
    for t in range(xg.shape[0]):
        z = xg[t] + matmul(h, w_hh.T) + b_hh
        h = tanh(z) if nonlinearity == "tanh" else z.relu()
        out.append(h)
    return stack(out)


def fused_and_composed(kind):
    rng = np.random.default_rng(5)
    T, B, H = 6, 3, 4
    G = GATES[kind] * H
    args = [f64(rng, T, B, G, requires_grad=True), f64(rng, G, H, scale=0.6, requires_grad=True),
            f64(rng, G, requires_grad=True), f64(rng, B, H, requires_grad=True)]
    if kind == "LSTM":
        args.append(f64(rng, B, H, requires_grad=True))
        return (lambda *a: LSTMFn.apply(*a)), composed_lstm, args
    if kind == "GRU":
        return (lambda *a: GRUFn.apply(*a)), composed_gru, args
    return (lambda *a: RNNFn.apply(*a, nonlinearity="tanh")), composed_rnn, args


@pytest.mark.parametrize("kind", KINDS)
def test_fused_recurrence_equals_the_per_step_graph_values_and_gradients(kind):
    """The hand-derived BPTT against autograd over the composed per-step graph."""
    fused, composed, args = fused_and_composed(kind)
    y1, y2 = fused(*args), composed(*args)
    np.testing.assert_allclose(y1.detach().numpy(), y2.detach().numpy(), rtol=1e-13,
                               atol=1e-14)
    dy = tinylm.tensor(np.random.default_rng(6).standard_normal(y1.shape))
    g1 = tinylm.autograd.grad(y1, args, dy)
    g2 = tinylm.autograd.grad(y2, args, dy)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_recurrence_gradcheck_and_gradgradcheck(kind):
    rng = np.random.default_rng(7)
    T, B, H = 2, 2, 2
    G = GATES[kind] * H
    args = [f64(rng, T, B, G, requires_grad=True), f64(rng, G, H, requires_grad=True),
            f64(rng, G, requires_grad=True), f64(rng, B, H, requires_grad=True)]
    if kind == "LSTM":
        fn = LSTMFn.apply
        args.append(f64(rng, B, H, requires_grad=True))
    elif kind == "GRU":
        fn = GRUFn.apply
    else:
        def fn(*a):
            return RNNFn.apply(*a, nonlinearity="tanh")
    assert gradcheck(fn, args)
    assert gradgradcheck(fn, args)
    no_bias = [a for k, a in enumerate(args) if k != 2]
    assert gradgradcheck(lambda xg, w, *s: fn(xg, w, None, *s), no_bias)


@pytest.mark.parametrize("kind", KINDS)
def test_docstrings_derive_the_gradient(kind):
    cls = getattr(rnn_cells, f"{kind}Fn")
    assert all(k in cls.__doc__ for k in ("Forward:", "Backward:", "Shapes:", "Saves:"))


def test_solution_blocks_are_marked_for_the_course_builder():
    text = Path(rnn_cells.__file__).read_text()
    blocks = re.findall(r"\n( *)# BEGIN SOLUTION (lesson\d\d)\n(.*?)\n( *)# END SOLUTION", text,
                        re.S)
    assert sorted(b[1] for b in blocks) == ["lesson06", "lesson06", "lesson07", "lesson07",
                                            "lesson08", "lesson08"]
    for indent, _, body, end_indent in blocks:
        assert indent == end_indent == "    "
        assert all(line.startswith(indent) or not line for line in body.split("\n"))


# ----------------------------------------------------------------------------- BPTT


@pytest.mark.parametrize("kind", KINDS)
def test_truncated_bptt_detaches_the_carried_state(kind):
    rng = np.random.default_rng(8)
    m = make(kind, 2, 3)
    x1, x2 = f64(rng, 4, 2, 2, requires_grad=True), f64(rng, 4, 2, 2, requires_grad=True)
    _, hn = m(x1)
    carried = tuple(s.detach() for s in hn) if kind == "LSTM" else hn.detach()
    assert all(not s.requires_grad for s in (carried if kind == "LSTM" else (carried,)))
    out2, _ = m(x2, carried)
    (out2 * out2).sum().backward()
    assert x1.grad is None  # nothing flows back into the first chunk
    assert x2.grad is not None
    # the same as starting the second chunk from the carried values as constants
    consts = (tuple(tinylm.tensor(s.numpy()) for s in carried) if kind == "LSTM"
              else tinylm.tensor(carried.numpy()))
    ref, _ = m(x2, consts)
    np.testing.assert_array_equal(ref.detach().numpy(), out2.detach().numpy())
    # without the detach the gradient reaches the first chunk
    _, hn = m(x1)
    out2, _ = m(x2, hn)
    out2.sum().backward()
    assert x1.grad is not None and np.abs(x1.grad.numpy()).sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_1000_step_sequence_trains_without_recursion_error(kind):
    old = sys.getrecursionlimit()
    rng = np.random.default_rng(9)
    m = make(kind, 3, 4, num_layers=2)
    x = f64(rng, 1000, 2, 3, requires_grad=True)
    # far fewer spare frames than steps: nothing may recurse per step
    sys.setrecursionlimit(len(inspect.stack(0)) + 150)
    try:
        out, _ = m(x)
        out[-1].sum().backward()
    finally:
        sys.setrecursionlimit(old)
    assert x.grad.shape == x.shape and np.isfinite(x.grad.numpy()).all()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("kind", CELLS)
def test_a_1000_step_loop_over_a_cell_backpropagates(kind):
    """A cell called in a Python loop builds a 1,000-step graph: the traversal is
    iterative, so backward works."""
    rng = np.random.default_rng(10)
    cell = make(kind, 3, 4)
    xs = f64(rng, 1000, 2, 3, requires_grad=True)
    hx = None
    for t in range(1000):
        hx = cell(xs[t], hx)
    (hx[0] if kind == "LSTMCell" else hx).sum().backward()
    assert np.isfinite(xs.grad.numpy()).all() and np.abs(xs.grad.numpy()[-1]).sum() > 0


# ----------------------------------------------------------------------------- dropout


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_between_layers_not_after_the_last(kind):
    rng = np.random.default_rng(11)
    x = f64(rng, 5, 2, 3)
    m = make(kind, 3, 4, num_layers=2, dropout=1.0)  # p = 1: layer 1 sees only zeros
    out, hn = m(x)
    top = make(kind, 4, 4)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.state_dict().items()
                         if k.endswith("_l1")})
    want, _ = top(tinylm.zeros(5, 2, 4, dtype=np.float64))
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-14)
    assert np.abs(out.detach().numpy()).min() > 0  # no dropout after the last layer
    m.eval()  # no dropout at all in eval mode
    out_eval, _ = m(x)
    m2 = make(kind, 3, 4, num_layers=2)
    m2.load_state_dict(m.state_dict())
    np.testing.assert_array_equal(out_eval.detach().numpy(), m2(x)[0].detach().numpy())


def test_dropout_with_one_layer_warns_as_pytorch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(3, 4, dropout=0.5)


# ----------------------------------------------------------------------------- recording


@L06
def test_recorded_gradient_norms_vanish_for_a_tanh_rnn_with_small_weights():
    rng = np.random.default_rng(12)
    m = make("RNN", 4, 8)
    with tinylm.no_grad():
        for p in m.parameters():
            p.data[...] *= 0.5  # a contraction: |W_hh| < 1
    x = f64(rng, 30, 2, 4)
    with nn.record_step_grads(m) as rec:
        out, _ = m(x)
    (out[-1] ** 2).sum().backward()  # the loss sees only the last step
    norms = rec.norms()
    assert norms.shape == (30,)
    assert np.all(np.diff(norms) > 0)  # larger the closer to the loss
    assert norms[0] < 1e-6 * norms[-1]


@L06
def test_recorded_gradients_are_the_total_gradient_reaching_each_step():
    """The recorder's dL/dh_t equals .grad of h_t retained in a per-step graph."""
    rng = np.random.default_rng(13)
    layer = make("RNN", 3, 4)
    cell = make("RNNCell", 3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = f64(rng, 6, 2, 3)
    with nn.record_step_grads(layer) as rec:
        out, _ = layer(x)
    loss = (out * out).sum() + out[-1].sum()
    loss.backward()
    h, hs = None, []
    for t in range(6):
        h = cell(x[t], h)
        h.retain_grad()
        hs.append(h)
    ((stack(hs) * stack(hs)).sum() + hs[-1].sum()).backward()
    want = np.stack([h.grad.numpy() for h in hs])
    np.testing.assert_allclose(rec.grads(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rec.grads("", layer=0), want, rtol=1e-12, atol=1e-14)


@L07
def test_lstm_recorder_gives_cell_state_gradients_and_joins_calls():
    rng = np.random.default_rng(14)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = make("LSTM", 3, 4, num_layers=2)

        def forward(self, x, hx=None):
            return self.lstm(x, hx)

    model = Model()
    x1, x2 = f64(rng, 5, 2, 3), f64(rng, 7, 2, 3)
    with nn.record_step_grads(model) as rec:
        _, hx = model(x1)
        out, _ = model(x2, hx)  # not detached: one 12-step graph
    out[-1].sum().backward()
    assert rec.names == [("lstm", 0), ("lstm", 1)]
    assert rec.grads("lstm").shape == (12, 2, 4)
    assert rec.norms("lstm", layer=0, state="c").shape == (12,)
    assert rec.norms()[-1] > 0  # the only recurrent module is found by itself
    with pytest.raises(ValueError, match="state must be 'h' or 'c'"):
        rec.grads(state="x")


@L08
def test_recorder_on_a_cell_loop_and_its_errors():
    rng = np.random.default_rng(15)
    cell = make("GRUCell", 3, 4)
    with nn.record_step_grads(cell) as rec:
        h = None
        for _ in range(5):
            h = cell(f64(rng, 2, 3), h)
    with pytest.raises(RuntimeError, match="no gradient has reached"):
        rec.grads()
    h.sum().backward()
    assert rec.grads().shape == (5, 2, 4)
    with pytest.raises(ValueError, match="state='c' is recorded for LSTM layers only"):
        rec.grads(state="c")
    with pytest.raises(KeyError, match="no recorded module named 'x'"):
        rec.grads("x")
    with pytest.raises(IndexError, match="layer 3 out of range"):
        rec.grads(layer=3)
    empty = nn.record_step_grads(cell)
    with empty as rec2:
        pass
    with pytest.raises(RuntimeError, match="no recurrent layer ran a forward"):
        rec2.grads()
    # outside the block nothing is recorded
    cell(f64(rng, 2, 3)).sum().backward()
    assert rec.grads().shape == (5, 2, 4)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("kind", KINDS)
def test_constructor_errors(kind):
    cls = getattr(nn, kind)
    with pytest.raises(NotImplementedError, match="bidirectional=True is not implemented"):
        cls(3, 4, bidirectional=True)
    with pytest.raises(ValueError, match="dropout should be a number in range"):
        cls(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        cls(3, 0)
    with pytest.raises(TypeError, match="input_size should be of type int"):
        cls(3.0, 4)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        cls(3, 4, num_layers=0)


@L06
def test_rnn_nonlinearity_is_checked():
    for cls in (nn.RNN, nn.RNNCell):
        with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
            cls(3, 4, nonlinearity="sigmoid")


@L07
def test_lstm_state_errors():
    m = make("LSTM", 3, 4)
    x = tinylm.zeros(5, 2, 3, dtype=np.float64)
    with pytest.raises(NotImplementedError, match="proj_size=2 is not implemented"):
        nn.LSTM(3, 4, proj_size=2)
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        m(x, tinylm.zeros(1, 2, 4, dtype=np.float64))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[1\] size \(1, 2, 4\), got "
                                           r"\[1, 2, 5\]"):
        m(x, (tinylm.zeros(1, 2, 4, dtype=np.float64), tinylm.zeros(1, 2, 5, dtype=np.float64)))
    with pytest.raises(TypeError, match="hx must be a tuple"):
        nn.LSTMCell(3, 4)(tinylm.zeros(2, 3), tinylm.zeros(2, 4))
    with pytest.raises(TypeError, match=r"hidden\[0\] has dtype float32 but the "
                                        "parameters have float64"):
        m(x, (tinylm.zeros(1, 2, 4), tinylm.zeros(1, 2, 4)))


# ----------------------------------------------------------------------------- devices


@pytest.mark.parametrize("kind", KINDS)
def test_layers_run_on_each_device(kind, device):
    rng = np.random.default_rng(16)
    m = make(kind, 3, 4, num_layers=2).to(device)
    x = f64(rng, 5, 2, 3, requires_grad=True, device=device)
    out, _ = m(x)
    (out * out).sum().backward()
    assert out.device == tinylm.Device(device) and x.grad.device == tinylm.Device(device)
    cpu = make(kind, 3, 4, num_layers=2)
    xc = tinylm.tensor(x.detach().cpu().numpy(), requires_grad=True)
    outc, _ = cpu(xc)
    (outc * outc).sum().backward()
    np.testing.assert_allclose(out.detach().cpu().numpy(), outc.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.cpu().numpy(), xc.grad.numpy(), rtol=1e-10, atol=1e-12)

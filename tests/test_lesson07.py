"""Grades lesson 07 (lessons/07_lstm.py): the LSTM step in gate order (i, f, g, o), every
gate's gradient (hand backward == autograd == central differences), the additive cell path
and the per-step gradient comparison with an RNN. Run with ``pytest -m lesson07``."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
from tinylm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson07

PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def f64(array, requires_grad=False) -> tinylm.Tensor:
    return tinylm.tensor(np.asarray(array), dtype=tinylm.float64, requires_grad=requires_grad)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def forward(x, h, c, w_ih, w_hh, b_ih, b_hh):
    H = h.shape[1]
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    i, f = sigmoid(z[:, :H]), sigmoid(z[:, H : 2 * H])
    g, o = np.tanh(z[:, 2 * H : 3 * H]), sigmoid(z[:, 3 * H :])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, (i, f, g, o, np.tanh(c_new))


def backward(dh, dc, x, h, c, w_ih, w_hh, cache):
    i, f, g, o, tanh_c = cache
    dc_hat = dc + dh * o * (1 - tanh_c**2)
    dz = np.concatenate([dc_hat * g * i * (1 - i), dc_hat * c * f * (1 - f),
                         dc_hat * i * (1 - g**2), dh * tanh_c * o * (1 - o)], axis=1)  # fmt: skip
    return {"x": dz @ w_ih, "h": dz @ w_hh, "c": dc_hat * f, "weight_ih": dz.T @ x,
            "weight_hh": dz.T @ h, "bias_ih": dz.sum(0), "bias_hh": dz.sum(0)}  # fmt: skip


def setup(seed=0, B=2, I=3, H=4):
    rng = np.random.default_rng(seed)
    tinylm.manual_seed(seed)
    cell = nn.LSTMCell(I, H, dtype=tinylm.float64)
    x, h, c = (rng.standard_normal((B, n)) for n in (I, H, H))
    return rng, cell, x, h, c, [getattr(cell, n).detach().numpy() for n in PARAMS]


def test_lstm_step_by_hand_matches_lstm_cell():
    _, cell, x, h, c, w = setup()
    h1, c1, _ = forward(x, h, c, *w)
    h1_t, c1_t = cell(f64(x), (f64(h), f64(c)))
    np.testing.assert_allclose(h1_t.detach().numpy(), h1, atol=1e-14)
    np.testing.assert_allclose(c1_t.detach().numpy(), c1, atol=1e-14)


def test_lstm_gate_order_is_i_f_g_o():
    # open only one block of the bias at a time and watch which formula it drives
    H = 3
    cell = nn.LSTMCell(2, H, dtype=tinylm.float64)
    with tinylm.no_grad():
        for name in PARAMS:
            getattr(cell, name).data[...] = 0.0
        cell.bias_hh.data[:H] = 50.0  # i = 1
        cell.bias_hh.data[H : 2 * H] = -50.0  # f = 0
        cell.bias_hh.data[2 * H : 3 * H] = 0.5  # g = tanh(0.5)
        cell.bias_hh.data[3 * H :] = 50.0  # o = 1
    c_prev = f64(np.full((1, H), 7.0))
    h1, c1 = cell(f64(np.zeros((1, 2))), (f64(np.zeros((1, H))), c_prev))
    np.testing.assert_allclose(c1.detach().numpy(), np.tanh(0.5), atol=1e-12)  # f c + i g
    np.testing.assert_allclose(h1.detach().numpy(), np.tanh(np.tanh(0.5)), atol=1e-12)


def test_hand_backward_autograd_and_central_differences_agree():
    rng, cell, x, h, c, w = setup(1)
    vh, vc = rng.standard_normal(h.shape), rng.standard_normal(c.shape)
    _, _, cache = forward(x, h, c, *w)
    hand = backward(vh, vc, x, h, c, w[0], w[1], cache)
    inputs = {"x": f64(x, True), "h": f64(h, True), "c": f64(c, True)}
    inputs.update((n, getattr(cell, n)) for n in PARAMS)

    def loss():
        h1, c1 = cell(inputs["x"], (inputs["h"], inputs["c"]))
        return (h1 * f64(vh)).sum() + (c1 * f64(vc)).sum()

    loss().backward()
    eps = 1e-6
    with tinylm.no_grad():
        for name, t in inputs.items():
            numerical = np.zeros(t.shape)
            for idx in np.ndindex(*t.shape):
                old = t.data[idx]
                t.data[idx] = old + eps
                up = loss().item()
                t.data[idx] = old - eps
                numerical[idx] = (up - loss().item()) / (2 * eps)
                t.data[idx] = old
            auto = t.grad.numpy()
            assert np.abs(hand[name] - auto).max() < 1e-12, name
            assert np.abs(hand[name] - numerical).max() < 1e-8, name
            assert np.abs(auto - numerical).max() < 1e-8, name


def test_cell_gradient_passes_back_through_forget_gate_only():
    # with no gradient on h_t, dL/dc_{t-1} = dL/dc_t * f exactly
    rng, cell, x, h, c, w = setup(2)
    c_in = f64(c, True)
    _, c1 = cell(f64(x), (f64(h), c_in))
    vc = rng.standard_normal(c.shape)
    (c1 * f64(vc)).sum().backward()
    f = forward(x, h, c, *w)[2][1]
    np.testing.assert_allclose(c_in.grad.numpy(), vc * f, atol=1e-14)


def test_lstm_cell_gradcheck():
    rng, cell, x, h, c, _ = setup(3)
    args = [f64(x, True), f64(h, True), f64(c, True), *(getattr(cell, n) for n in PARAMS)]

    def fn(x, h, c, *params):
        h1, c1 = cell(x, (h, c))
        return h1, c1

    assert gradcheck(fn, args)


def step_norms(model, x, state="h"):
    with nn.record_step_grads(model) as rec:
        output, _ = model(x)
        loss = output[-1].sum()
    loss.backward()
    return rec.norms(state=state)


def test_forget_bias_keeps_gradient_alive_where_rnn_vanishes():
    I, H, T = 4, 16, 50
    x = f64(np.random.default_rng(0).standard_normal((T, 8, I)) * 0.1)
    tinylm.manual_seed(1)
    rnn_norms = step_norms(nn.RNN(I, H, dtype=tinylm.float64), x)
    tinylm.manual_seed(1)
    lstm = nn.LSTM(I, H, dtype=tinylm.float64)
    with tinylm.no_grad():
        lstm.bias_ih_l0.data[H : 2 * H] = 0.0
        lstm.bias_hh_l0.data[H : 2 * H] = 3.0
    lstm_norms = step_norms(lstm, x)
    assert rnn_norms[0] < 1e-8 * rnn_norms[-1]
    assert lstm_norms[0] > 0.05 * lstm_norms[-1]
    assert lstm_norms[0] > 1e6 * rnn_norms[0]
    tinylm.manual_seed(1)
    cell_norms = step_norms(lstm, x, state="c")
    assert cell_norms.shape == (T,) and np.all(np.isfinite(cell_norms))


def test_lstm_parameter_count_is_four_times_rnn():
    I, H = 10, 20
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(nn.LSTM(I, H)) == 4 * (H * I + H * H + 2 * H)
    assert count(nn.LSTM(I, H)) == 4 * count(nn.RNN(I, H))

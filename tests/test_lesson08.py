"""Grades lesson 08 (lessons/08_gru.py): the GRU step in PyTorch's formulation (r, z, n),
its hand-derived backward, a gradcheck and the parameter count against the LSTM.
Run with ``pytest -m lesson08``."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
from tinylm.gradcheck import gradcheck

pytestmark = pytest.mark.lesson08

PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def f64(array, requires_grad=False) -> tinylm.Tensor:
    return tinylm.tensor(np.asarray(array), dtype=tinylm.float64, requires_grad=requires_grad)


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def step(x, h, w_ih, w_hh, b_ih, b_hh):
    H = h.shape[1]
    a, b = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    r = sigmoid(a[:, :H] + b[:, :H])
    z = sigmoid(a[:, H : 2 * H] + b[:, H : 2 * H])
    n = np.tanh(a[:, 2 * H :] + r * b[:, 2 * H :])
    return (1 - z) * n + z * h, (r, z, n, b)


def setup(seed=0, B=3, I=3, H=5):
    rng = np.random.default_rng(seed)
    tinylm.manual_seed(seed)
    cell = nn.GRUCell(I, H, dtype=tinylm.float64)
    return rng, cell, rng.standard_normal((B, I)), rng.standard_normal((B, H))


def weights(cell):
    return [getattr(cell, n).detach().numpy() for n in PARAMS]


def test_gru_step_formula_matches_gru_cell():
    _, cell, x, h = setup()
    want, _ = step(x, h, *weights(cell))
    np.testing.assert_allclose(cell(f64(x), f64(h)).detach().numpy(), want, atol=1e-14)


def test_reset_gate_multiplies_hidden_bias():
    # b_hn sits inside r * (...): moving it into b_in changes the output unless r = 1
    _, cell, x, h = setup(1)
    H = h.shape[1]
    before = cell(f64(x), f64(h)).detach().numpy()
    with tinylm.no_grad():
        cell.bias_ih.data[2 * H :] += cell.bias_hh.data[2 * H :]
        cell.bias_hh.data[2 * H :] = 0.0
    assert np.abs(cell(f64(x), f64(h)).detach().numpy() - before).max() > 1e-6


def test_hand_backward_matches_autograd():
    rng, cell, x, h = setup(2)
    w_ih, w_hh, b_ih, b_hh = weights(cell)
    H = h.shape[1]
    _, (r, z, n, b) = step(x, h, w_ih, w_hh, b_ih, b_hh)
    vh = rng.standard_normal(h.shape)
    dz_n = vh * (1 - z) * (1 - n**2)
    dz_z = vh * (h - n) * z * (1 - z)
    dz_r = dz_n * b[:, 2 * H :] * r * (1 - r)
    da = np.concatenate([dz_r, dz_z, dz_n], axis=1)
    db = np.concatenate([dz_r, dz_z, dz_n * r], axis=1)
    xt, ht = f64(x, True), f64(h, True)
    (cell(xt, ht) * f64(vh)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), da @ w_ih, atol=1e-13)
    np.testing.assert_allclose(ht.grad.numpy(), vh * z + db @ w_hh, atol=1e-13)
    np.testing.assert_allclose(cell.weight_ih.grad.numpy(), da.T @ x, atol=1e-13)
    np.testing.assert_allclose(cell.weight_hh.grad.numpy(), db.T @ h, atol=1e-13)
    np.testing.assert_allclose(cell.bias_ih.grad.numpy(), da.sum(0), atol=1e-13)
    np.testing.assert_allclose(cell.bias_hh.grad.numpy(), db.sum(0), atol=1e-13)


def test_gru_cell_gradcheck():
    _, cell, x, h = setup(3)
    args = [f64(x, True), f64(h, True), *(getattr(cell, n) for n in PARAMS)]
    assert gradcheck(lambda x, h, *p: cell(x, h), args)


def test_gru_parameter_count_is_three_quarters_of_lstm():
    def count(m):
        return sum(p.numel() for p in m.parameters())

    I, H = 64, 256
    assert count(nn.GRU(I, H)) == 3 * (H * I + H * H + 2 * H)
    assert 4 * count(nn.GRU(I, H)) == 3 * count(nn.LSTM(I, H))
    assert count(nn.GRUCell(I, H)) == count(nn.GRU(I, H))

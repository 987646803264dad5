"""Grades lesson 06 (lessons/06_rnn_bptt.py): the Elman recurrence, backpropagation through
time as a product of Jacobians, vanishing and exploding gradients per time step, gradient
clipping, truncated BPTT and a gradcheck of RNNCell. Run with ``pytest -m lesson06``."""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
from tinylm import optim
from tinylm.gradcheck import gradcheck
from tinylm.nn.utils import clip_grad_norm_

pytestmark = pytest.mark.lesson06


def f64(array, requires_grad=False) -> tinylm.Tensor:
    return tinylm.tensor(np.asarray(array), dtype=tinylm.float64, requires_grad=requires_grad)


def weights(rnn) -> tuple:
    return tuple(getattr(rnn, n + "_l0").detach().numpy()
                 for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))  # fmt: skip


def scaled_orthogonal_rnn(scale: float, H: int = 16, I: int = 4, seed: int = 0):
    tinylm.manual_seed(seed)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((H, H)))
    model = nn.RNN(I, H, dtype=tinylm.float64)
    with tinylm.no_grad():
        model.weight_hh_l0.data[...] = scale * q
    return model


def step_norms(model, T: int = 40, B: int = 4) -> np.ndarray:
    x = f64(np.random.default_rng(1).standard_normal((T, B, model.input_size)) * 0.1)
    with nn.record_step_grads(model) as rec:
        output, _ = model(x)
        loss = output[-1].sum()
    loss.backward()
    return rec.norms()


def test_rnn_layer_matches_recurrence_by_hand():
    rng = np.random.default_rng(0)
    T, B, I, H = 7, 3, 4, 5
    rnn = nn.RNN(I, H, dtype=tinylm.float64)
    x, h0 = rng.standard_normal((T, B, I)), rng.standard_normal((1, B, H))
    w_ih, w_hh, b_ih, b_hh = weights(rnn)
    h, want = h0[0], []
    for t in range(T):
        h = np.tanh(x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        want.append(h)
    output, h_n = rnn(f64(x), f64(h0))
    np.testing.assert_allclose(output.detach().numpy(), np.stack(want), atol=1e-13)
    np.testing.assert_allclose(h_n.detach().numpy()[0], want[-1], atol=1e-13)


def test_rnn_cell_unrolled_equals_rnn_layer():
    rng = np.random.default_rng(1)
    rnn = nn.RNN(3, 4, dtype=tinylm.float64)
    cell = nn.RNNCell(3, 4, dtype=tinylm.float64)
    with tinylm.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data[...] = getattr(rnn, name + "_l0").data
    x = f64(rng.standard_normal((6, 2, 3)))
    output, _ = rnn(x)
    h = None
    for t in range(6):
        h = cell(x[t], h)
        np.testing.assert_allclose(h.detach().numpy(), output.detach().numpy()[t], atol=1e-13)


def test_bptt_jacobian_product_equals_autograd_dh0():
    rng = np.random.default_rng(2)
    T, I, H = 9, 3, 6
    rnn = nn.RNN(I, H, dtype=tinylm.float64)
    _, w_hh, _, _ = weights(rnn)
    h0 = f64(rng.standard_normal((1, 1, H)) * 0.5, requires_grad=True)
    output, _ = rnn(f64(rng.standard_normal((T, 1, I))), h0)
    v = rng.standard_normal(H)
    (output[-1] * f64(v)).sum().backward()
    hs = output.detach().numpy()[:, 0]
    product = np.eye(H)
    for t in range(T - 1, -1, -1):
        product = product @ (np.diag(1 - hs[t] ** 2) @ w_hh)  # J_T ... J_1
    np.testing.assert_allclose(v @ product, h0.grad.numpy()[0, 0], atol=1e-13)


def test_jacobian_norm_bounded_by_largest_singular_value():
    rng = np.random.default_rng(3)
    rnn = scaled_orthogonal_rnn(1.7, H=8)
    _, w_hh, _, _ = weights(rnn)
    output, _ = rnn(f64(rng.standard_normal((20, 1, 4))))
    sigma = np.linalg.norm(w_hh, 2)
    assert sigma == pytest.approx(1.7)
    for h in output.detach().numpy()[:, 0]:
        assert np.linalg.norm(np.diag(1 - h**2) @ w_hh, 2) <= sigma + 1e-12


def test_small_weight_tanh_rnn_gradient_norms_decay_with_distance():
    norms = step_norms(scaled_orthogonal_rnn(0.5))
    assert np.all(np.diff(norms) > 0)  # larger the closer h_t is to the loss
    assert norms[0] < 1e-8 * norms[-1]
    # at least geometric decay at rate sigma_max = 0.5, as the bound says
    assert np.all(norms[:-1] <= 0.5 * norms[1:] * (1 + 1e-9))


def test_large_weight_tanh_rnn_gradient_norms_grow_with_distance():
    norms = step_norms(scaled_orthogonal_rnn(3.0))
    assert norms[0] > 1e3 * norms[-1]
    assert norms[-11] > norms[-1]


def test_clip_grad_norm_caps_exploding_rnn_gradient():
    model = scaled_orthogonal_rnn(3.0)
    step_norms(model)
    before = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    total = clip_grad_norm_(model.parameters(), max_norm=1.0)
    after = np.concatenate([p.grad.numpy().ravel() for p in model.parameters()])
    assert total.item() == pytest.approx(np.linalg.norm(before))
    assert total.item() > 1e3
    assert np.linalg.norm(after) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(after * np.linalg.norm(before), before, rtol=1e-5)


def test_detached_state_stops_gradient_at_chunk_boundary():
    rng = np.random.default_rng(4)
    rnn = nn.RNN(3, 5, dtype=tinylm.float64)
    xa = f64(rng.standard_normal((4, 2, 3)), requires_grad=True)
    xb = f64(rng.standard_normal((4, 2, 3)), requires_grad=True)
    _, h = rnn(xa)
    output, _ = rnn(xb, h.detach())
    output[-1].sum().backward()
    assert xa.grad is None or not np.any(xa.grad.numpy())
    assert np.any(xb.grad.numpy())
    # without the detach the gradient reaches the first chunk
    xa2 = f64(xa.detach().numpy(), requires_grad=True)
    _, h = rnn(xa2)
    output, _ = rnn(xb, h)
    output[-1].sum().backward()
    assert np.any(xa2.grad.numpy())


def test_truncated_bptt_trains_1000_step_sequence():
    rng = np.random.default_rng(5)
    tinylm.manual_seed(0)
    u = rng.uniform(-1, 1, size=(1000, 1, 1))
    target = np.concatenate([np.zeros((2, 1, 1)), u[:-2]])
    net = nn.RNN(1, 24, dtype=tinylm.float64)
    readout = nn.Linear(24, 1, dtype=tinylm.float64)
    opt = optim.Adam([*net.parameters(), *readout.parameters()], lr=0.01)
    losses = []
    for _ in range(8):
        h, total = None, 0.0
        for s in range(0, 1000, 50):
            output, h = net(f64(u[s : s + 50]), h)
            loss = ((readout(output) - f64(target[s : s + 50])) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            h = h.detach()
            total += loss.item() / 20
        losses.append(total)
    assert losses[-1] < 0.2 * losses[0]


def test_rnn_cell_gradcheck():
    rng = np.random.default_rng(6)
    for nonlinearity in ("tanh", "relu"):
        cell = nn.RNNCell(3, 4, nonlinearity=nonlinearity, dtype=tinylm.float64)
        x = f64(rng.standard_normal((2, 3)), requires_grad=True)
        h = f64(rng.standard_normal((2, 4)), requires_grad=True)
        params = [cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh]
        assert gradcheck(lambda x, h, *p, cell=cell: cell(x, h), [x, h, *params])

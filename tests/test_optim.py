"""Optimizers and gradient clipping against their update rules written out in float64 NumPy.

Each trajectory runs 20 steps on a separable quadratic, f(theta) = sum(s * theta^2) / 2, with
a fixed perturbation e_t added to the gradient at each step: g_t = s * theta + e_t.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn
from tinylm.nn.utils import clip_grad_norm_, clip_grad_value_
from tinylm.optim import SGD, Adam, AdamW

pytestmark = pytest.mark.lesson05

STEPS = 20
SHAPES = [(3, 2), (4,)]  # a weight and a bias: two parameters, each with its own state


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    theta0 = [rng.standard_normal(s) for s in SHAPES]
    scale = [rng.uniform(0.5, 2.0, s) for s in SHAPES]
    noise = [[rng.standard_normal(s) * 0.1 for s in SHAPES] for _ in range(STEPS)]
    return theta0, scale, noise


def _grad(theta, scale, e):
    return scale * theta + e


def run_tinylm(make_opt, dtype=np.float64, seed=0, steps=STEPS):
    """The parameters after each step (float64 NumPy copies) and the optimizer."""
    theta0, scale, noise = _problem(seed)
    params = [tinylm.tensor(t.astype(dtype), requires_grad=True) for t in theta0]
    opt = make_opt(params)
    traj = []
    for t in range(steps):
        for p, s, e in zip(params, scale, noise[t]):
            p.grad = tinylm.tensor(_grad(p.data, s.astype(dtype), e.astype(dtype)))
        opt.step()
        traj.append([p.data.astype(np.float64) for p in params])
    return traj, opt, params


def run_reference(update, **hp):
    """The same 20 steps with ``update(theta, g, state, t, **hp)`` from the formulas."""
    theta0, scale, noise = _problem()
    thetas, states, traj = [t.copy() for t in theta0], [{} for _ in SHAPES], []
    for t in range(1, STEPS + 1):
        for i in range(len(SHAPES)):
            g = _grad(thetas[i], scale[i], noise[t - 1][i])
            thetas[i] = update(thetas[i], g, states[i], t, **hp)
        traj.append([th.copy() for th in thetas])
    return traj


def sgd_reference(
    theta, g, state, t, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False
):
    if weight_decay != 0:
        g = g + weight_decay * theta
    if momentum != 0:
        if t == 1:
            state["b"] = g.copy()  # b_1 = g_1
        else:
            state["b"] = momentum * state["b"] + (1 - dampening) * g
        g = g + momentum * state["b"] if nesterov else state["b"]
    return theta - lr * g


def adam_reference(
    theta,
    g,
    state,
    t,
    lr,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
):
    b1, b2 = betas
    if t == 1:
        state.update(m=np.zeros_like(theta), v=np.zeros_like(theta), vmax=np.zeros_like(theta))
    if weight_decay != 0:
        if decoupled:
            theta = theta * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * theta
    state["m"] = b1 * state["m"] + (1 - b1) * g
    state["v"] = b2 * state["v"] + (1 - b2) * g**2
    state["vmax"] = np.maximum(state["vmax"], state["v"])
    v_hat = state["vmax"] if amsgrad else state["v"]
    m_hat = state["m"] / (1 - b1**t)
    return theta - lr * m_hat / (np.sqrt(v_hat) / np.sqrt(1 - b2**t) + eps)


SGD_CASES = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.1, momentum=0.9, dampening=0.3),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.05),
    "all": dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True),
}
ADAM_CASES = {
    "plain": dict(lr=0.05),
    "betas_eps": dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3),
    "weight_decay": dict(lr=0.05, weight_decay=0.1),
    "amsgrad": dict(lr=0.05, amsgrad=True),
    "amsgrad_weight_decay": dict(lr=0.05, weight_decay=0.1, amsgrad=True),
}
ADAMW_CASES = {
    "default_decay": dict(lr=0.05),
    "weight_decay": dict(lr=0.05, weight_decay=0.3),
    "amsgrad": dict(lr=0.05, weight_decay=0.1, amsgrad=True),
}


def _assert_traj(got, want, rtol=1e-12, atol=1e-14):
    for step, (g_step, w_step) in enumerate(zip(got, want)):
        for g, w in zip(g_step, w_step):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"step {step + 1}")


@pytest.mark.parametrize("name", SGD_CASES)
def test_sgd_matches_formula(name):
    hp = SGD_CASES[name]
    got, _, _ = run_tinylm(lambda ps: SGD(ps, **hp))
    _assert_traj(got, run_reference(sgd_reference, **hp))


@pytest.mark.parametrize("name", ADAM_CASES)
def test_adam_matches_formula(name):
    hp = ADAM_CASES[name]
    got, _, _ = run_tinylm(lambda ps: Adam(ps, **hp))
    _assert_traj(got, run_reference(adam_reference, **hp))


@pytest.mark.parametrize("name", ADAMW_CASES)
def test_adamw_matches_formula(name):
    hp = dict(ADAMW_CASES[name])
    got, _, _ = run_tinylm(lambda ps: AdamW(ps, **hp))
    hp.setdefault("weight_decay", 1e-2)  # AdamW's default
    _assert_traj(got, run_reference(adam_reference, decoupled=True, **hp))


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1),
        lambda ps: Adam(ps, lr=0.05, weight_decay=0.1, amsgrad=True),
        lambda ps: AdamW(ps, lr=0.05),
    ],
    ids=["sgd", "adam", "adamw"],
)
def test_float32_stays_float32(make):
    got, opt, params = run_tinylm(make, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in params)
    for state in opt.state.values():
        for key, buf in state.items():
            assert key == "step" or buf.dtype == np.float32, key
    want, _, _ = run_tinylm(make, dtype=np.float64)
    _assert_traj(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
        lambda ps: Adam(ps, weight_decay=0.1),
    ],
    ids=["sgd", "adam"],
)
def test_step_updates_in_place_without_a_graph(make):
    p = tinylm.tensor([1.0, -2.0, 3.0], requires_grad=True)
    q = tinylm.tensor([5.0], requires_grad=True)  # no gradient: skipped, no state
    data, grad = p.data, np.array([0.5, 0.5, -1.0], dtype=np.float32)
    p.grad = tinylm.tensor(grad.copy())
    opt = make([p, q])
    opt.step()
    assert p.data is data and p.is_leaf and p.grad_fn is None and p.requires_grad
    np.testing.assert_array_equal(p.grad.data, grad)  # the gradient itself is never changed
    np.testing.assert_array_equal(q.data, [5.0])
    assert q not in opt.state


def test_step_with_autograd_gradients_and_closure():
    x = tinylm.tensor([0.0, 10.0], requires_grad=True)
    target = tinylm.tensor([3.0, -1.0])
    opt = Adam([x], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = ((x - target) ** 2).sum()
        loss.backward()
        return loss

    with tinylm.no_grad():  # step turns grad mode back on for the closure
        first = opt.step(closure)
    for _ in range(500):
        opt.step(closure)
    assert first.item() == pytest.approx(9.0 + 121.0)
    np.testing.assert_allclose(x.data, [3.0, -1.0], atol=1e-3)


def test_param_groups_with_different_lr():
    theta0, _, _ = _problem()
    got, opt, _ = run_tinylm(
        lambda ps: SGD([{"params": [ps[0]]}, {"params": ps[1], "lr": 0.01}], lr=0.1, momentum=0.9)
    )
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]
    assert opt.param_groups[1]["momentum"] == 0.9  # unset keys take the defaults
    fast = run_reference(sgd_reference, lr=0.1, momentum=0.9)
    slow = run_reference(sgd_reference, lr=0.01, momentum=0.9)
    _assert_traj([[s[0]] for s in got], [[s[0]] for s in fast])
    _assert_traj([[s[1]] for s in got], [[s[1]] for s in slow])


def test_add_param_group():
    a, b = (tinylm.tensor([1.0], requires_grad=True) for _ in range(2))
    opt = Adam([a], lr=0.1)
    opt.add_param_group({"params": [b], "eps": 1e-3})
    assert opt.param_groups[1] == {
        "params": [b],
        "lr": 0.1,
        "betas": (0.9, 0.999),
        "eps": 1e-3,
        "weight_decay": 0,
        "amsgrad": False,
    }
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    p, q = tinylm.tensor([1.0, 2.0], requires_grad=True), tinylm.tensor([3.0], requires_grad=True)
    (p * p).sum().backward()
    grad_array = p.grad.data
    SGD([p, q], lr=0.1).zero_grad(set_to_none=set_to_none)
    assert q.grad is None
    if set_to_none:
        assert p.grad is None
    else:
        assert p.grad.data is grad_array  # zeroed in place
        np.testing.assert_array_equal(p.grad.data, [0.0, 0.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1),
        lambda ps: Adam(ps, lr=0.05, amsgrad=True, weight_decay=0.1),
        lambda ps: AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.01}], lr=0.05),
    ],
    ids=["sgd", "adam", "adamw_groups"],
)
def test_state_dict_round_trip_mid_run_is_bit_identical(make):
    full, _, _ = run_tinylm(make)
    half, opt, params = run_tinylm(make, steps=STEPS // 2)
    saved = opt.state_dict()
    assert sorted(saved) == ["param_groups", "state"]
    assert [i for g in saved["param_groups"] for i in g["params"]] == [0, 1]
    assert sorted(saved["state"]) == [0, 1]
    frozen = {k: v.data.copy() for k, v in saved["state"][0].items() if k != "step"}

    # a fresh optimizer on fresh parameters with the same values continues identically
    theta0, scale, noise = _problem()
    fresh = [tinylm.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt2 = make(fresh)
    opt2.load_state_dict(saved)
    for t in range(STEPS // 2, STEPS):
        for p, s, e in zip(fresh, scale, noise[t]):
            p.grad = tinylm.tensor(_grad(p.data, s, e))
        opt2.step()
        for got, want in zip(fresh, full[t]):
            np.testing.assert_array_equal(got.data, want)
    for k, v in frozen.items():  # the saved dict holds copies: later steps leave it alone
        np.testing.assert_array_equal(saved["state"][0][k].data, v)
    assert opt2.state_dict()["param_groups"] == make(fresh).state_dict()["param_groups"]


def test_load_state_dict_checks_groups_and_shapes():
    p, q = tinylm.tensor([1.0, 2.0], requires_grad=True), tinylm.tensor([1.0], requires_grad=True)
    opt = SGD([p, q], lr=0.1, momentum=0.9)
    p.grad, q.grad = tinylm.tensor([1.0, 1.0]), tinylm.tensor([1.0])
    opt.step()
    saved = opt.state_dict()
    with pytest.raises(ValueError, match="different|parameter groups"):
        SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match="doesn't match the size"):
        SGD([p], lr=0.1).load_state_dict(saved)
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(1,\)"):
        SGD([q, p], lr=0.1).load_state_dict(saved)
    # string indices (as after a JSON round trip) load too
    saved["state"] = {str(k): v for k, v in saved["state"].items()}
    SGD([p, q], lr=0.1).load_state_dict(saved)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda ps: SGD(ps, lr=-1), "Invalid learning rate: -1"),
        (lambda ps: SGD(ps, momentum=-0.5), "Invalid momentum value: -0.5"),
        (lambda ps: SGD(ps, weight_decay=-1e-4), "Invalid weight_decay value: -0.0001"),
        (lambda ps: SGD(ps, nesterov=True), "Nesterov momentum requires a momentum and zero"),
        (lambda ps: SGD(ps, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov momentum"),
        (lambda ps: Adam(ps, lr=-1), "Invalid learning rate: -1"),
        (lambda ps: Adam(ps, eps=-1e-8), "Invalid epsilon value: -1e-08"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), "Invalid beta parameter at index 0: 1.0"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), "Invalid beta parameter at index 1: -0.1"),
        (lambda ps: AdamW(ps, weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
        (lambda ps: SGD([{"params": ps, "lr": -2.0}], lr=0.1), "Invalid learning rate: -2.0"),
        (lambda ps: SGD([], lr=0.1), "optimizer got an empty parameter list"),
        (lambda ps: SGD([ps[0], ps[0]], lr=0.1), "duplicate parameters"),
        (lambda ps: Adam([{"params": ps}, {"params": ps[:1]}]), "more than one parameter group"),
    ],
)
def test_invalid_arguments_raise_value_error(make, message):
    params = [tinylm.tensor([1.0], requires_grad=True)]
    with pytest.raises(ValueError, match=message):
        make(params)


def test_invalid_params_raise_type_error():
    p = tinylm.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="iterable of Tensors or dicts, but got Tensor"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        SGD([{"params": {p}}], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\] is a ndarray"):
        SGD([p, np.zeros(1)], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        SGD([p * 2], lr=0.1)


def test_gradient_of_another_dtype_is_not_cast():
    p = tinylm.tensor([1.0, 2.0], dtype=tinylm.float32, requires_grad=True)
    p.grad = tinylm.tensor([1.0, 1.0], dtype=tinylm.float64)
    with pytest.raises(RuntimeError, match="dtype float64 does not match .* dtype float32"):
        Adam([p]).step()


def test_repr_lists_the_groups():
    text = repr(SGD([tinylm.tensor([1.0], requires_grad=True)], lr=0.5))
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.5" in text


# ---------------------------------------------------------------------- gradient clipping
def _with_grads(grads, dtype=np.float64):
    params = []
    for g in grads:
        p = tinylm.tensor(np.zeros(np.shape(g), dtype=dtype), requires_grad=True)
        p.grad = tinylm.tensor(np.asarray(g, dtype=dtype))
        params.append(p)
    return params


GRADS = [np.array([[3.0, -4.0], [1.0, 2.0]]), np.array([12.0, -0.5, 0.25])]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [1.0, 1e3])
def test_clip_grad_norm_matches_numpy(norm_type, max_norm):
    params = _with_grads(GRADS) + [tinylm.tensor([7.0], requires_grad=True)]  # no grad: skipped
    flat = np.concatenate([g.ravel() for g in GRADS])
    total = np.linalg.norm(flat, ord=norm_type)
    coef = min(1.0, max_norm / (total + 1e-6))
    norm = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert isinstance(norm, tinylm.Tensor) and norm.shape == () and norm.dtype == np.float64
    np.testing.assert_allclose(norm.item(), total, rtol=1e-14)
    for p, g in zip(params, GRADS):
        np.testing.assert_allclose(p.grad.data, g * coef, rtol=1e-14)
    assert params[-1].grad is None


def test_clip_grad_norm_single_tensor_float32_and_no_grads():
    (p,) = _with_grads([[3.0, 4.0]], dtype=np.float32)
    norm = clip_grad_norm_(p, 1.0)
    assert norm.dtype == np.float32 and p.grad.dtype == np.float32
    np.testing.assert_allclose(p.grad.data, [0.6, 0.8], rtol=1e-6)
    empty = clip_grad_norm_([tinylm.tensor([1.0], requires_grad=True)], 1.0)
    assert empty.item() == 0.0


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_clip_grad_norm_nonfinite(bad):
    params = _with_grads([[1.0, bad], [2.0]])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 .* is non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(params[1].grad.data, [2.0])  # nothing clipped
    with np.errstate(invalid="raise"):  # NumPy's warnings are not the user's business here
        norm = clip_grad_norm_(params, 1.0)
    # as PyTorch: the factor 1 / (N + 1e-6) is 0 for N = inf (and inf * 0 is NaN), NaN for NaN
    assert not np.isfinite(norm.item())
    np.testing.assert_array_equal(params[1].grad.data, [0.0 if bad == np.inf else np.nan])
    assert np.isnan(params[0].grad.data[1])


def test_clip_grad_value():
    params = _with_grads([[-3.0, 0.5, 2.0], [np.nan]])
    clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad.data, [-1.0, 0.5, 1.0])
    assert np.isnan(params[1].grad.data).all()
    with pytest.raises(ValueError, match="clip_value must be >= 0, got -1.0"):
        clip_grad_value_(params, -1)
    assert tinylm.nn.utils.clip_grad_value_ is clip_grad_value_

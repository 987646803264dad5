"""The fused LSTM / GRU / RNN kernels (tinylm/kernels/rnn.py) against the reference code.

Every comparison runs the same public layer or Function twice: with the kernels on (the
default) and inside ``tinylm.kernels.reference()``; outputs, final states and the gradients
of every input and parameter must agree.

Tolerances, relative to the largest |value| of each compared array (``close`` below):
- float64, 1e-12: both sides make the same BLAS calls on the same numbers; what differs is
  rounding inside the step (a fused multiply-add, sigmoid as e^{-|x|} / (1 + e^{-|x|})
  instead of 1 / (1 + e^{-x})), a few ulp per step. Measured: below 1e-15 at T = 100.
- float32, 2e-5: the kernels' float32 sigmoid/tanh are within 3 ulp of NumPy's (tested in
  test_kernels_fastmath.py) and each step chains ~10 roundings; measured below 5e-7
  (4 ulp) at T = 100, so the bound leaves a margin of ~40 for other seeds and shapes.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import tinylm
from tinylm import kernels, nn
from tinylm.autograd import backward
from tinylm.gradcheck import gradcheck, gradgradcheck
from tinylm.kernels import rnn as krnn
from tinylm.nn.rnn_cells import GRUFn, LSTMFn, RNNFn
from tinylm.tensor import Tensor

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these

TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}
DTYPES = [np.float64, np.float32]
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1, "RNN(relu)": 1}
FNS = {"LSTM": LSTMFn, "GRU": GRUFn, "RNN": RNNFn, "RNN(relu)": RNNFn}
KINDS = list(GATES)


def close(got, want, what=""):
    """got == want up to TOL[dtype] times the largest |want| (nan where want has nan)."""
    assert got.dtype == want.dtype and got.shape == want.shape, what
    tol = TOL[want.dtype]
    scale = float(np.max(np.abs(want), initial=0.0, where=np.isfinite(want)))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(scale, 1e-30),
                               equal_nan=True, err_msg=what)


def both(fn):
    """fn() with the kernels on, then with the reference code: two lists of arrays."""
    assert kernels.enabled(), "these tests compare kernels on against kernels off"
    got = fn()
    with kernels.reference():
        want = fn()
    return got, want


def check_both(fn, what=""):
    got, want = both(fn)
    assert len(got) == len(want)
    for k, (a, b) in enumerate(zip(got, want)):
        if a is None or b is None:
            assert a is None and b is None, f"{what}: gradient {k} missing on one side"
            continue
        close(a, b, f"{what}: array {k}")


# ----------------------------------------------------------------------------- layers


def layer(kind, dtype, **kw):
    tinylm.manual_seed(0)
    if kind == "RNN(relu)":
        return nn.RNN(5, 8, nonlinearity="relu", dtype=dtype, **kw)
    return getattr(nn, kind)(5, 8, dtype=dtype, **kw)


def run_layer(kind, dtype, x_shape, given_state=True, L=1, **kw):
    """Forward + backward of a layer with random output gradients; returns the output,
    final states and every gradient, as arrays."""
    m = layer(kind, dtype, num_layers=L, **kw)
    rng = np.random.default_rng(1)
    x = tinylm.tensor(rng.standard_normal(x_shape).astype(dtype), requires_grad=True)
    st_shape = (L, 8) if len(x_shape) == 2 else (L, x_shape[0 if kw.get("batch_first")
                                                            else 1], 8)
    states = [tinylm.tensor(rng.standard_normal(st_shape).astype(dtype) * 0.5,
                            requires_grad=True) for _ in range(2 if kind == "LSTM" else 1)]
    hx = None if not given_state else (tuple(states) if kind == "LSTM" else states[0])
    out, hn = m(x, hx)
    outs = [out, *(hn if kind == "LSTM" else (hn,))]
    gys = [tinylm.tensor(rng.standard_normal(o.shape).astype(dtype)) for o in outs]
    backward(outs, gys)
    leaves = [x, *(states if given_state else []), *m.parameters()]
    return [o.data for o in outs] + [t.grad.data for t in leaves]


CONFIGS = {
    "1 layer, initial state": dict(x_shape=(7, 3, 5)),
    "2 layers, batch_first, no state": dict(x_shape=(3, 7, 5), L=2, batch_first=True,
                                            given_state=False),
    "bias=False, 2 layers": dict(x_shape=(6, 2, 5), L=2, bias=False),
    "unbatched": dict(x_shape=(4, 5)),
    "batch of 1, 1 step": dict(x_shape=(1, 1, 5)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("kind", KINDS)
def test_layer_outputs_states_and_gradients_match_the_reference(kind, config, dtype):
    check_both(lambda: run_layer(kind, dtype, **CONFIGS[config]), f"{kind} {config}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_match_the_reference(kind, dtype):
    def run():
        tinylm.manual_seed(0)
        cell = getattr(nn, kind)(5, 6, dtype=dtype)
        rng = np.random.default_rng(2)
        x = tinylm.tensor(rng.standard_normal((3, 5)).astype(dtype), requires_grad=True)
        h = tinylm.tensor(rng.standard_normal((3, 6)).astype(dtype), requires_grad=True)
        c = tinylm.tensor(rng.standard_normal((3, 6)).astype(dtype), requires_grad=True)
        out = cell(x, (h, c)) if kind == "LSTMCell" else cell(x, h)
        outs = list(out) if kind == "LSTMCell" else [out]
        backward(outs, [tinylm.tensor(rng.standard_normal(o.shape).astype(dtype))
                        for o in outs])
        leaves = [x, h, *([c] if kind == "LSTMCell" else []), *cell.parameters()]
        return [o.data for o in outs] + [t.grad.data for t in leaves]

    check_both(run, kind)


# ----------------------------------------------------------------------------- Functions


def fn_args(kind, dtype, T=5, B=3, H=4, rng=None, bias=True):
    """Arrays (xg, W_hh, b_hh, h0[, c0]) for the Function of ``kind``."""
    rng = rng or np.random.default_rng(3)
    G = GATES[kind] * H
    arrs = [rng.standard_normal((T, B, G)), rng.standard_normal((G, H)) * 0.5,
            rng.standard_normal(G) if bias else None, rng.standard_normal((B, H))]
    if kind == "LSTM":
        arrs.append(rng.standard_normal((B, H)))
    return [None if a is None else a.astype(dtype) for a in arrs]


def apply(kind, tensors):
    kw = {"nonlinearity": "relu" if kind == "RNN(relu)" else "tanh"} if "RNN" in kind else {}
    return FNS[kind].apply(*tensors, **kw)


def run_fn(kind, arrays, dy=None, seed=4):
    """Forward + backward of the Function on these arrays (leaves needing grad, None stays
    None); returns y and the gradients."""
    ts = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
    y = apply(kind, ts)
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    backward([y], [Tensor(dy)])
    return [y.data] + [t.grad.data for t in ts if t is not None]


@pytest.mark.parametrize("kind", KINDS)
def test_the_fused_path_runs_and_the_switch_turns_it_off(kind):
    ts = [None if a is None else Tensor(a, requires_grad=True)
          for a in fn_args(kind, np.float32)]
    run_class = {"LSTM": krnn.LSTMRun, "GRU": krnn.GRURun}.get(kind, krnn.RNNRun)
    assert isinstance(apply(kind, ts)._ctx.fused, run_class)
    with kernels.reference():
        assert apply(kind, ts)._ctx.fused is None
    mixed = [t if k != 0 else Tensor(t.data.astype(np.float64), requires_grad=True)
             for k, t in enumerate(ts)]  # a dtype mix: the kernels leave it to the reference
    assert not krnn.applies(*[None if t is None else t.data for t in mixed])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_strided_inputs(kind, dtype):
    """Views with gaps and transposes (xg every other step, W_hh a transpose, states a
    column slice) give the same as their contiguous copies and as the reference."""
    rng = np.random.default_rng(5)
    T, B, H = 4, 3, 5
    G = GATES[kind] * H
    xg = rng.standard_normal((2 * T, B, G)).astype(dtype)[::2]
    w = np.ascontiguousarray(rng.standard_normal((H, G)).astype(dtype) * 0.5).T
    b = rng.standard_normal(2 * G).astype(dtype)[::2]
    states = [rng.standard_normal((B, 2 * H)).astype(dtype)[:, ::2]
              for _ in range(2 if kind == "LSTM" else 1)]
    arrays = [xg, w, b, *states]
    assert not any(a.flags.c_contiguous for a in arrays)
    check_both(lambda: run_fn(kind, arrays), f"{kind} strided")
    contiguous = run_fn(kind, [np.ascontiguousarray(a) for a in arrays])
    for a, c in zip(run_fn(kind, arrays), contiguous):
        close(a, c)  # BLAS may take another code path for a transposed W: not bitwise


@pytest.mark.parametrize("kind", KINDS)
def test_no_bias_and_a_broadcast_output_gradient(kind):
    arrays = fn_args(kind, np.float64, bias=False)

    def run():
        ts = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
        y = apply(kind, ts)
        y.sum().backward()  # dy: a broadcast view of ones, stride 0
        return [y.data] + [t.grad.data for t in ts if t is not None]

    check_both(run, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_batch(kind):
    """B = 0 (T = 0 never reaches the Function: the layers raise first)."""
    T, B, H = 3, 0, 4

    def run():
        arrays = fn_args(kind, np.float64, T=T, B=B, H=H)
        ts = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
        y = apply(kind, ts)
        backward([y], [Tensor(np.ones(y.shape))])
        return [y.data] + [None if t.grad is None else t.grad.data for t in ts
                           if t is not None]

    check_both(run, f"{kind} B=0")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_inf_nan_and_saturated_gates_pass_through_as_in_numpy(kind, dtype):
    arrays = fn_args(kind, dtype, T=4)
    xg = arrays[0]
    xg[0, 0, :3] = np.nan
    xg[1, 1, 0], xg[1, 1, 1] = np.inf, -np.inf
    xg[2] *= 200  # sigmoid's exp(-z) overflows float32 in the reference: gates at 0 or 1
    with np.errstate(all="ignore"):  # the reference's matmul warns about inf - inf
        check_both(lambda: run_fn(kind, arrays), kind)


# ----------------------------------------------------------------------------- contracts


@pytest.mark.parametrize("kind", KINDS)
def test_same_bits_with_one_and_two_numba_threads(kind):
    arrays = fn_args(kind, np.float32, T=6, B=4, H=16)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run_fn(kind, arrays)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = run_fn(kind, arrays)
    finally:
        numba.set_num_threads(old)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_and_gradgradcheck_with_the_kernels_on(kind):
    """The first backward is the fused one; create_graph runs the reference's Tensor-op
    backward, so second derivatives still hold."""
    rng = np.random.default_rng(7)
    ts = [None if a is None else Tensor(a, requires_grad=True)
          for a in fn_args(kind, np.float64, T=3, B=2, H=2, rng=rng)]

    def fn(*a):
        return apply(kind, a)

    assert kernels.enabled()
    assert gradcheck(fn, ts)
    assert gradgradcheck(fn, ts)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_step_recorder_sees_the_same_gradients(kind):
    def run():
        m = layer(kind, np.float64, num_layers=2)
        x = tinylm.tensor(np.random.default_rng(8).standard_normal((6, 2, 5)))
        with nn.record_step_grads(m) as rec:
            out, _ = m(x)
        (out * out).sum().backward()
        got = [rec.grads(layer=k) for k in (0, 1)] + [p.grad.data for p in m.parameters()]
        return got + ([rec.grads(layer=0, state="c")] if kind == "LSTM" else [])

    check_both(run, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_kernels_switched_off_between_forward_and_backward(kind):
    """A fused forward whose backward runs with the kernels off: the reference backward
    reads the fused forward's buffers."""
    arrays = fn_args(kind, np.float64)

    def run(off_for_backward):
        ts = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
        y = apply(kind, ts)
        dy = Tensor(np.random.default_rng(9).standard_normal(y.shape))
        if off_for_backward:
            with kernels.reference():
                backward([y], [dy])
        else:
            backward([y], [dy])
        return [y.data] + [t.grad.data for t in ts if t is not None]

    for a, b in zip(run(True), run(False)):
        close(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_retain_graph_accumulates_and_a_second_backward_without_it_raises(kind):
    arrays = fn_args(kind, np.float64)
    for on in (True, False):
        old = kernels.set_enabled(on)
        try:
            ts = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
            y = apply(kind, ts)
            dy = Tensor(np.ones(y.shape))
            backward([y], [dy], retain_graph=True)
            once = [t.grad.data.copy() for t in ts if t is not None]
            backward([y], [dy])
            for g, t in zip(once, [t for t in ts if t is not None]):
                np.testing.assert_allclose(t.grad.data, 2 * g, rtol=1e-15)
            with pytest.raises(RuntimeError, match="second time"):
                backward([y], [dy])
        finally:
            kernels.set_enabled(old)


def test_bench_cases_run():
    for case in krnn.bench_cases(quick=True):
        case.kernel()
        case.numpy()
        assert case.torch is None or callable(case.torch)

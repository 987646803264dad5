"""The optimizer kernels (tinylm/kernels/optim.py) against the reference ``_update`` code.

Through the public API (``optim.Adam/AdamW/SGD``, ``.step()``), kernels on against
``tinylm.kernels.reference()``. Tolerance: none, the results are compared bit for bit. The
kernel performs, per element, the same IEEE-754 operations as the reference's NumPy calls
(+, *, /, sqrt, each correctly rounded), on the same operands in the same order, with each
hyperparameter expression rounded once to the parameter's dtype as NumPy 2 rounds a Python
scalar (NEP 50); it is compiled without fast-math, so no fused multiply-add and no
reciprocal stands in for a division. Equal inputs to the same correctly rounded operations
give equal outputs, in float32 and float64 alike; a float32 tolerance of "a few ulp per
step" would only hide a reordering.
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
import pytest

import tinylm
from tinylm import kernels, optim
from tinylm.kernels import optim as kopt

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these

STEPS = 20
SHAPES = [(3, 5), (7,), (2, 0), (4, 1, 3), (1000,)]
DTYPES = [np.float32, np.float64]

CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_weight_decay": ("SGD", dict(lr=0.1, weight_decay=0.05)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_dampening": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "sgd_all": ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05, nesterov=True)),
    "adam": ("Adam", dict(lr=0.05)),
    "adam_betas_eps": ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-3)),
    "adam_weight_decay": ("Adam", dict(lr=0.05, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.05, amsgrad=True)),
    "adam_amsgrad_weight_decay": ("Adam", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    "adamw": ("AdamW", dict(lr=0.05)),
    "adamw_weight_decay": ("AdamW", dict(lr=0.05, weight_decay=0.3)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
}


@pytest.fixture(autouse=True)
def kernels_on():
    """Kernels on for every test, also under TINYLM_KERNELS=reference (what they test)."""
    old = kernels.set_enabled(True)
    yield
    kernels.set_enabled(old)


@pytest.fixture
def kernel_calls(monkeypatch):
    """Counts the kernel entry points' answers: {"done": n, "declined": n}."""
    counts = {"done": 0, "declined": 0}
    for name in ("adam_update", "sgd_update"):
        real = getattr(kopt, name)

        def spy(*args, _real=real, **kw):
            done = _real(*args, **kw)
            counts["done" if done else "declined"] += 1
            return done

        monkeypatch.setattr(kopt, name, spy)
    return counts


def grads(shapes, dtype, seed=1):
    """STEPS gradients per parameter; some big, some tiny, so the moments span exponents."""
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(s) * 10.0 ** rng.integers(-4, 3, s)).astype(dtype)
             for s in shapes] for _ in range(STEPS)]  # fmt: skip


def train(case, dtype, *, on: bool, shapes=SHAPES, gs=None, steps=STEPS, make=None):
    """Params after `steps` steps of the case's optimizer, and its state_dict."""
    name, hp = CASES[case]
    rng = np.random.default_rng(0)
    gs = grads(shapes, dtype) if gs is None else gs
    params = [tinylm.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
              for s in shapes] if make is None else make()  # fmt: skip
    opt = getattr(optim, name)(params, **hp)
    with contextlib.nullcontext() if on else kernels.reference():
        for t in range(steps):
            for p, g in zip(params, gs[t]):
                p.grad = tinylm.Tensor(g)
            opt.step()
    return [p.data.copy() for p in params], opt.state_dict()


def assert_same_state(a: dict, b: dict):
    """Same structure (indices, keys, types, shapes, dtypes) and the same values, exactly."""
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        sa, sb = a["state"][i], b["state"][i]
        assert sa.keys() == sb.keys(), i
        for k in sa:
            if isinstance(sa[k], tinylm.Tensor):
                assert isinstance(sb[k], tinylm.Tensor)
                assert sa[k].dtype == sb[k].dtype and sa[k].shape == sb[k].shape, (i, k)
                assert sa[k].data.flags.c_contiguous == sb[k].data.flags.c_contiguous
                np.testing.assert_array_equal(sa[k].data, sb[k].data, err_msg=f"{i} {k}")
            else:
                assert type(sa[k]) is type(sb[k]) and sa[k] == sb[k], (i, k)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_is_the_reference_bit_for_bit(case, dtype, kernel_calls):
    got, got_state = train(case, dtype, on=True)
    assert kernel_calls == {"done": STEPS * len(SHAPES), "declined": 0}
    want, want_state = train(case, dtype, on=False)
    assert kernel_calls["done"] == STEPS * len(SHAPES), "the reference ran without the kernel"
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert_same_state(got_state, want_state)


@pytest.mark.parametrize("case", sorted(CASES))
def test_inf_and_nan_pass_through_as_in_the_reference(case):
    shapes = [(6,)]
    gs = grads(shapes, np.float32)
    gs[3][0][:3] = [np.inf, -np.inf, np.nan]  # step 4: overflowing and undefined gradients
    gs[5][0][3] = np.float32(3e38)  # its square overflows in v
    with np.errstate(all="ignore"):
        got, _ = train(case, np.float32, on=True, shapes=shapes, gs=gs)
        want, _ = train(case, np.float32, on=False, shapes=shapes, gs=gs)
    np.testing.assert_array_equal(got[0], want[0])  # nan where nan, inf where inf


@pytest.mark.parametrize("case", ["sgd_all", "adam_amsgrad_weight_decay", "adamw_amsgrad"])
def test_parallel_kernel_same_bits_with_1_and_2_threads(case, monkeypatch, kernel_calls):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    monkeypatch.setattr(kopt, "PARALLEL_MIN", 0)  # every parameter takes the prange kernel
    shapes = [(4099,), (33, 65)]
    gs = grads(shapes, np.float32)
    old = numba.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(train(case, np.float32, on=True, shapes=shapes, gs=gs)[0])
    finally:
        numba.set_num_threads(old)
    want = train(case, np.float32, on=False, shapes=shapes, gs=gs)[0]
    assert kernel_calls["done"] == 2 * STEPS * len(shapes)
    for one, two, ref in zip(*runs, want):
        np.testing.assert_array_equal(one, two)
        np.testing.assert_array_equal(one, ref)


@pytest.mark.parametrize("case", ["sgd_momentum", "adam_amsgrad"])
def test_parameter_without_grad_is_skipped(case, kernel_calls):
    name, hp = CASES[case]
    a = tinylm.tensor(np.ones(4, np.float32), requires_grad=True)
    b = tinylm.tensor(np.ones(3, np.float32), requires_grad=True)
    opt = getattr(optim, name)([a, b], **hp)
    for _ in range(3):
        a.grad = tinylm.tensor(np.full(4, 0.5, np.float32))
        opt.step()
    np.testing.assert_array_equal(b.data, np.ones(3, np.float32))
    assert b not in opt.state or not opt.state[b]
    assert list(opt.state_dict()["state"]) == [0]
    assert kernel_calls == {"done": 3, "declined": 0}


@pytest.mark.parametrize("case", ["sgd_dampening", "adam_amsgrad_weight_decay", "adamw"])
def test_strided_gradient_is_read_as_is(case, kernel_calls):
    """A transposed or sliced gradient: copied to a contiguous array, used, left unchanged."""
    shapes = [(5, 3), (4,)]
    base = grads([(3, 5), (8,)], np.float64)
    gs = [[g0.T, g1[::2]] for g0, g1 in base]  # views with strides
    kept = [[g.copy() for g in step] for step in gs]
    got, got_state = train(case, np.float64, on=True, shapes=shapes, gs=gs)
    assert kernel_calls == {"done": STEPS * 2, "declined": 0}
    want, want_state = train(case, np.float64, on=False, shapes=shapes, gs=kept)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert_same_state(got_state, want_state)
    for step, orig in zip(gs, kept):
        for g, g0 in zip(step, orig):
            np.testing.assert_array_equal(g, g0)  # the gradient is only read


@pytest.mark.parametrize("case", ["sgd_nesterov", "adam_amsgrad", "adamw_weight_decay"])
def test_strided_parameter_takes_the_reference(case, kernel_calls):
    """A parameter that is a strided view (possible through tinylm.Tensor(view)) cannot be
    updated through a flat view: the reference runs, and the view's base sees the update."""
    shapes = [(3, 4)]
    bases = []

    def make():
        base = np.random.default_rng(0).standard_normal((3, 8))
        bases.append(base)
        return [tinylm.Tensor(base[:, ::2], requires_grad=True)]

    gs = grads(shapes, np.float64)
    got, _ = train(case, np.float64, on=True, shapes=shapes, gs=gs, make=make)
    assert kernel_calls["done"] == 0
    want, _ = train(case, np.float64, on=False, shapes=shapes, gs=gs, make=make)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(bases[0][:, ::2], got[0])


def test_strided_state_buffer_takes_the_reference(kernel_calls):
    """A loaded buffer may be Fortran-ordered (a transposed array in a checkpoint)."""
    p = tinylm.tensor(np.ones((3, 4), np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=0.1)
    p.grad = tinylm.tensor(np.full((3, 4), 0.5, np.float32))
    opt.step()
    opt.state[p]["exp_avg"] = np.asfortranarray(opt.state[p]["exp_avg"])
    before = kernel_calls["declined"]
    opt.step()
    assert kernel_calls["declined"] == before + 1
    assert opt.state[p]["step"] == 2


@pytest.mark.parametrize("case", ["sgd_all", "adam_amsgrad_weight_decay", "adamw"])
def test_float16_parameters_take_the_reference(case, kernel_calls):
    shapes = [(4, 3)]
    gs = grads(shapes, np.float16)
    with np.errstate(all="ignore"):
        got, got_state = train(case, np.float16, on=True, shapes=shapes, gs=gs)
        want, want_state = train(case, np.float16, on=False, shapes=shapes, gs=gs)
    assert kernel_calls["done"] == 0
    assert got[0].dtype == np.float16
    np.testing.assert_array_equal(got[0], want[0])
    assert_same_state(got_state, want_state)


def test_numpy_scalar_hyperparameters_take_the_reference(kernel_calls):
    """np.float64(lr) makes the float32 reference compute in float64 (NEP 50): not the
    kernel's arithmetic, so the kernel declines."""
    p = tinylm.tensor(np.ones(5, np.float32), requires_grad=True)
    opt = optim.Adam([p], lr=np.float64(0.1))
    p.grad = tinylm.tensor(np.full(5, 0.5, np.float32))
    opt.step()
    assert kernel_calls == {"done": 0, "declined": 1}
    assert p.dtype == np.float32


@pytest.mark.parametrize("case", ["sgd_dampening", "adam_amsgrad", "adamw_amsgrad"])
def test_checkpoint_resumes_across_the_switch(case):
    """State written by the kernel loads into a reference run and vice versa, same bits."""
    dtype, shapes = np.float32, [(6, 2), (3,)]
    gs = grads(shapes, dtype)
    name, hp = CASES[case]
    straight, _ = train(case, dtype, on=True, shapes=shapes, gs=gs)
    for first, second in ((True, False), (False, True)):
        rng = np.random.default_rng(0)
        params = [tinylm.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True)
                  for s in shapes]  # fmt: skip
        opt = getattr(optim, name)(params, **hp)
        for t in range(STEPS):
            if t == STEPS // 2:
                saved = opt.state_dict()
                opt = getattr(optim, name)(params, **hp)
                opt.load_state_dict(saved)
            with contextlib.nullcontext() if (first if t < STEPS // 2 else second) \
                    else kernels.reference():  # fmt: skip
                for p, g in zip(params, gs[t]):
                    p.grad = tinylm.Tensor(g)
                opt.step()
        for a, b in zip(params, straight):
            np.testing.assert_array_equal(a.data, b)


@pytest.mark.parametrize("case", ["sgd_all", "adam_amsgrad_weight_decay", "adamw"])
def test_zero_dim_parameter_matches_torch(case):
    """A 0-d parameter (a learned scalar): the kernel updates it through a 1-element view.
    Against PyTorch here: the NumPy reference trips over 0-d arrays (np.multiply of a 0-d
    array returns a scalar, so ``out=`` and in-place updates of the result do not apply)."""
    torch = pytest.importorskip("torch")
    name, hp = CASES[case]
    p = tinylm.tensor(np.float64(1.5), requires_grad=True)
    tp = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    opt, topt = getattr(optim, name)([p], **hp), getattr(torch.optim, name)([tp], **hp)
    for t in range(STEPS):
        g = 0.3 + 0.1 * t
        p.grad = tinylm.tensor(np.float64(g))
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        topt.step()
    assert p.shape == ()
    np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_bench_cases_run():
    for case in kopt.bench_cases(quick=True):
        case.kernel()
        case.numpy()
        if case.torch is not None:
            case.torch()

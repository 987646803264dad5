"""Tensors: creation and dtype rules, properties, conversion, grad flags, devices.

Expected values come from NumPy or are worked out by hand in the test.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import tinylm
from tinylm import Tensor

pytestmark = pytest.mark.lesson02


# ----------------------------------------------------------------------------- creation


@pytest.mark.parametrize(
    ("data", "dtype"),
    [
        (1.5, np.float32),
        ([1.0, 2.0], np.float32),
        ([[1, 2], [3.5, 4]], np.float32),  # one float anywhere makes it float
        (3, np.int64),
        ([1, 2, 3], np.int64),
        (True, np.bool_),
        ([True, False], np.bool_),
    ],
)
def test_python_data_dtype_rules(data, dtype):
    t = tinylm.tensor(data)
    assert t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.numpy(), np.array(data, dtype=dtype))


@pytest.mark.parametrize(
    "dtype", [np.float64, np.float32, np.float16, np.int32, np.int64, np.bool_]
)
def test_numpy_arrays_keep_their_dtype(dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    t = tinylm.tensor(a)
    assert t.dtype == np.dtype(dtype)
    assert t.shape == (2, 3)
    np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_numpy_scalars_keep_their_dtype(dtype):
    t = tinylm.tensor(np.array([1, 0]).astype(dtype)[0])  # indexing gives a NumPy scalar
    assert t.dtype == np.dtype(dtype) and t.shape == ()
    assert t.item() == 1


def test_tensor_copies_its_data():
    a = np.array([1.0, 2.0, 3.0])
    t = tinylm.tensor(a)
    a[0] = 100.0
    assert t.numpy()[0] == 1.0


def test_tensor_of_a_tensor_copies():
    t = tinylm.tensor([1.0, 2.0])
    u = tinylm.tensor(t)
    u.data[0] = 7.0
    assert t.data[0] == 1.0


def test_explicit_dtype_converts():
    t = tinylm.tensor([1, 2], dtype=tinylm.float64)
    assert t.dtype == np.float64
    assert tinylm.tensor([1.0, 2.0], dtype=tinylm.int64).dtype == np.int64  # whole numbers: fine
    np.testing.assert_array_equal(tinylm.tensor([3.0, -2.0], dtype=tinylm.int64).numpy(), [3, -2])


@pytest.mark.parametrize(
    "data",
    [[1.5, 2.0], 0.25, np.array([1.5, 2.0]), np.array([np.nan]), np.array([np.inf])],
    ids=["list", "scalar", "array", "nan", "inf"],
)
def test_float_data_with_an_int_dtype_that_would_truncate_raises(data):
    with pytest.raises((ValueError, TypeError), match="tensor"):
        tinylm.tensor(data, dtype=tinylm.int64)


def test_int_data_that_would_wrap_raises():
    with pytest.raises(ValueError, match="int8"):
        tinylm.tensor(np.array([300]), dtype=np.int8)
    with pytest.raises(ValueError, match="int8"):
        tinylm.tensor([300], dtype=np.int8)
    with pytest.raises(ValueError, match="uint8"):
        tinylm.tensor(np.array([-1]), dtype=np.uint8)


def test_zeros_ones_full():
    z = tinylm.zeros(2, 3)
    assert z.shape == (2, 3) and z.dtype == np.float32
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3)))
    assert tinylm.zeros((2, 3)).shape == (2, 3)  # a tuple works too
    assert tinylm.zeros(()).shape == ()
    o = tinylm.ones(4, dtype=tinylm.float64)
    assert o.dtype == np.float64
    np.testing.assert_array_equal(o.numpy(), np.ones(4))
    f = tinylm.full((2, 2), 7)
    assert f.dtype == np.int64
    np.testing.assert_array_equal(f.numpy(), [[7, 7], [7, 7]])
    assert tinylm.full((3,), 0.5).dtype == np.float32
    assert tinylm.full((3,), True).dtype == np.bool_
    assert tinylm.full(3, 2.0).shape == (3,)


def test_negative_size_raises():
    with pytest.raises(ValueError, match="-1"):
        tinylm.zeros(2, -1)


def test_arange():
    a = tinylm.arange(5)
    assert a.dtype == np.int64
    np.testing.assert_array_equal(a.numpy(), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(tinylm.arange(2, 5).numpy(), [2, 3, 4])
    np.testing.assert_array_equal(tinylm.arange(5, 0, -2).numpy(), [5, 3, 1])
    f = tinylm.arange(0, 1, 0.25)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f.numpy(), [0.0, 0.25, 0.5, 0.75])
    assert tinylm.arange(3, dtype=tinylm.float64).dtype == np.float64
    with pytest.raises(ValueError, match="step"):
        tinylm.arange(0, 3, 0)


def test_randn_and_rand_shapes_dtypes_and_distribution():
    tinylm.manual_seed(1)
    n = tinylm.randn(200, 100)
    assert n.shape == (200, 100) and n.dtype == np.float32
    a = n.numpy()
    # 20,000 standard normals: mean within 5 standard errors (5/sqrt(2e4) ~ 0.035)
    assert abs(a.mean()) < 0.035 and abs(a.std() - 1.0) < 0.03
    u = tinylm.rand(200, 100, dtype=tinylm.float64).numpy()
    assert u.dtype == np.float64
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01  # sd of the mean is sqrt(1/12)/sqrt(2e4) ~ 0.002
    assert tinylm.randn(3, requires_grad=True).requires_grad


def test_manual_seed_reproduces_draws():
    tinylm.manual_seed(1234)
    a1, b1, c1 = tinylm.randn(5, 3), tinylm.rand(4), tinylm.randint(0, 10, (6,))
    tinylm.manual_seed(1234)
    a2, b2, c2 = tinylm.randn(5, 3), tinylm.rand(4), tinylm.randint(0, 10, (6,))
    np.testing.assert_array_equal(a1.numpy(), a2.numpy())
    np.testing.assert_array_equal(b1.numpy(), b2.numpy())
    np.testing.assert_array_equal(c1.numpy(), c2.numpy())
    # the stream moves on, and another seed gives other draws
    assert not np.array_equal(tinylm.randn(5, 3).numpy(), a1.numpy())
    tinylm.manual_seed(1235)
    assert not np.array_equal(tinylm.randn(5, 3).numpy(), a1.numpy())


def test_manual_seed_rejects_bad_seeds():
    with pytest.raises(ValueError, match="seed"):
        tinylm.manual_seed(-1)
    with pytest.raises(ValueError, match="seed"):
        tinylm.manual_seed(1.5)


def test_rng_state_round_trip():
    tinylm.manual_seed(7)
    tinylm.randn(3)
    state = tinylm.get_rng_state()
    a = tinylm.randn(4).numpy()
    tinylm.set_rng_state(state)
    np.testing.assert_array_equal(tinylm.randn(4).numpy(), a)


@pytest.mark.parametrize("fn", ["zeros_like", "ones_like", "randn_like", "rand_like"])
def test_like_constructors_keep_shape_and_dtype(fn):
    ref = tinylm.tensor(np.zeros((2, 3), np.float64))
    t = getattr(tinylm, fn)(ref)
    assert t.shape == (2, 3) and t.dtype == np.float64 and not t.requires_grad
    assert getattr(tinylm, fn)(ref, dtype=tinylm.float32).dtype == np.float32
    assert getattr(tinylm, fn)(ref, requires_grad=True).requires_grad


def test_like_constructor_values():
    ref = tinylm.tensor([[1, 2], [3, 4]])
    np.testing.assert_array_equal(tinylm.zeros_like(ref).numpy(), np.zeros((2, 2)))
    np.testing.assert_array_equal(tinylm.ones_like(ref).numpy(), np.ones((2, 2)))
    f = tinylm.full_like(ref, 9)
    assert f.dtype == np.int64
    np.testing.assert_array_equal(f.numpy(), np.full((2, 2), 9))


# ----------------------------------------------------------------------------- properties


def test_basic_properties():
    t = tinylm.tensor(np.zeros((2, 3, 4), np.float32))
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3 and t.dim() == 3
    assert t.numel() == 24 and len(t) == 2
    assert t.size() == (2, 3, 4) and t.size(-1) == 4
    assert t.dtype == np.float32
    assert t.device == "cpu" and t.device.type == "cpu"
    assert t.grad is None and t.requires_grad is False
    assert t.is_leaf and t.grad_fn is None


def test_size_with_a_bad_dim_names_the_range():
    with pytest.raises(IndexError, match=r"\[-2, 1\]"):
        tinylm.zeros(2, 3).size(2)


def test_numpy_returns_the_values_and_refuses_requires_grad():
    t = tinylm.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    a = t.detach().numpy()
    assert isinstance(a, np.ndarray)
    np.testing.assert_array_equal(a, [1.0, 2.0])


def test_item():
    x = tinylm.tensor(2.5)
    assert x.item() == 2.5 and type(x.item()) is float
    assert type(tinylm.tensor([3]).item()) is int
    assert tinylm.tensor(True).item() is True
    assert float(tinylm.tensor([[0.5]])) == 0.5
    with pytest.raises(ValueError, match=r"\(2,\)"):
        tinylm.tensor([1.0, 2.0]).item()


def test_bool_of_a_multi_element_tensor_raises():
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(tinylm.tensor([1.0, 2.0]))
    assert bool(tinylm.tensor([1.0])) is True


def test_detach_shares_data_and_cuts_grad():
    x = tinylm.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    d = y.detach()
    assert d.data is y.data  # same memory, as in PyTorch
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None


def test_to_dtype_and_the_shorthands():
    x = tinylm.tensor([1.25, -2.75])
    d = x.to(tinylm.float64)
    assert d.dtype == np.float64
    np.testing.assert_array_equal(d.numpy(), [1.25, -2.75])
    assert x.double().dtype == np.float64
    assert x.double().float().dtype == np.float32
    assert x.to(dtype=tinylm.float64).dtype == np.float64
    assert x.to("cpu", tinylm.float64).dtype == np.float64
    assert x.to(d).dtype == np.float64  # like another tensor
    lo = x.long()
    assert lo.dtype == np.int64
    np.testing.assert_array_equal(lo.numpy(), [1, -2])  # truncation toward zero, as astype
    assert x.to("cpu") is x  # nothing to do
    assert x.to(tinylm.Device("cpu")) is x
    assert x.to(device="cpu", dtype=None).dtype == np.float32  # None keeps the dtype
    with pytest.raises(TypeError, match="unexpected"):
        x.to(dtype=tinylm.float64, copy=True)


def test_long_of_nan_raises():
    with pytest.raises(ValueError, match="non-finite"):
        tinylm.tensor([float("nan")]).long()


def test_to_is_differentiable_back_to_the_source_dtype():
    x = tinylm.tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.requires_grad and y.dtype == np.float64
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_transpose_properties():
    a = np.arange(24.0).reshape(2, 3, 4)
    t = tinylm.tensor(a)
    np.testing.assert_array_equal(t.T.numpy(), a.T)
    np.testing.assert_array_equal(t.mT.numpy(), np.swapaxes(a, -1, -2))
    m = tinylm.tensor(a[0])
    np.testing.assert_array_equal(m.T.numpy(), a[0].T)
    np.testing.assert_array_equal(m.mT.numpy(), a[0].T)


def test_repr():
    assert repr(tinylm.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(tinylm.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(tinylm.tensor([1.0], dtype=tinylm.float64)) == "tensor([1.], dtype=tinylm.float64)"
    x = tinylm.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == "tensor([1., 2.], requires_grad=True)"
    assert repr(x * 2.0) == "tensor([2., 4.], grad_fn=<Mul>)"


# ----------------------------------------------------------------------------- grad flags


def test_requires_grad_only_on_floats():
    assert tinylm.tensor([1.0], requires_grad=True).requires_grad
    assert tinylm.tensor([1.0], dtype=tinylm.float64, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="int64"):
        tinylm.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="bool"):
        tinylm.tensor([True], requires_grad=True)
    with pytest.raises(RuntimeError, match="floating"):
        tinylm.zeros(2, dtype=tinylm.int64, requires_grad=True)
    with pytest.raises(RuntimeError, match="floating"):
        tinylm.arange(3).requires_grad_()


def test_requires_grad_off_only_on_a_leaf():
    x = tinylm.tensor([1.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)
    x.requires_grad_(False)
    assert not x.requires_grad


@pytest.mark.parametrize(
    ("op", "ref"),
    [
        (lambda a, b: a == b, np.equal),
        (lambda a, b: a != b, np.not_equal),
        (lambda a, b: a < b, np.less),
        (lambda a, b: a <= b, np.less_equal),
        (lambda a, b: a > b, np.greater),
        (lambda a, b: a >= b, np.greater_equal),
    ],
)
def test_comparisons_return_bool_tensors_without_grad(op, ref):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], np.float32)
    b = np.array([2.0, 2.0, 2.0], np.float32)  # broadcasts over rows
    x = tinylm.tensor(a, requires_grad=True)
    y = op(x, tinylm.tensor(b))
    assert isinstance(y, Tensor)
    assert y.dtype == np.bool_
    assert not y.requires_grad and y.grad_fn is None
    np.testing.assert_array_equal(y.numpy(), ref(a, b))
    np.testing.assert_array_equal(op(x, 2.0).numpy(), ref(a, 2.0))  # against a scalar


# ----------------------------------------------------------------------------- dtype rules


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a @ b,
    ],
    ids=["add", "sub", "mul", "div", "matmul"],
)
def test_float32_with_float64_raises_naming_both(op):
    a = tinylm.ones(2, 2)
    b = tinylm.ones(2, 2, dtype=tinylm.float64)
    with pytest.raises(TypeError) as info:
        op(a, b)
    assert "float32" in str(info.value) and "float64" in str(info.value)
    with pytest.raises(TypeError, match="float64"):
        op(b, a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_scalars_keep_the_tensor_dtype(dtype):
    x = tinylm.tensor(np.array([1.0, 2.0], dtype))
    for y in (x * 2.0, 2.0 * x, x + 1, 1 - x, x / 3.0, 3.0 / x, x**2.0, x**2, x - 0.5):
        assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal((x * 2.0).numpy(), np.array([2.0, 4.0], dtype))
    # numpy 0-d scalars too: a float64 scalar does not widen a float32 tensor
    assert (x * np.float64(2.0)).dtype == np.dtype(dtype)


def test_int_tensors_with_scalars():
    i = tinylm.tensor([1, 2])
    assert (i + 1).dtype == np.int64
    np.testing.assert_array_equal((i * 3).numpy(), [3, 6])
    assert (i * 0.5).dtype == np.float32  # an int tensor meets a float: the default float
    with pytest.raises(TypeError, match="div"):
        i / tinylm.tensor([2, 2])


# ----------------------------------------------------------------------------- devices


def test_device_strings():
    assert tinylm.Device("cpu") == "cpu"
    d = tinylm.Device("cuda:1")
    assert d.type == "cuda" and d.index == 1 and str(d) == "cuda:1"
    assert tinylm.Device("cuda") == "cuda:0"
    for bad in ("gpu", "cuda:x", "cpu:0"):
        with pytest.raises(ValueError, match="device"):
            tinylm.Device(bad)
    with pytest.raises(TypeError, match="device"):
        tinylm.Device(0)


def test_cuda_is_available_returns_a_bool():
    assert isinstance(tinylm.cuda.is_available(), bool)
    assert isinstance(tinylm.cuda.device_count(), int)


def test_cuda_without_a_gpu_gives_a_clear_error():
    if tinylm.cuda.is_available():
        pytest.skip("a GPU is available here")
    assert tinylm.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="(?i)cupy|cuda"):
        tinylm.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="(?i)cupy|cuda"):
        tinylm.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="(?i)cupy|cuda"):
        tinylm.tensor([1.0]).to("cuda")


def _run_python(code: str, extra_path: str | None = None) -> str:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = extra_path + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_import_does_not_import_cupy(tmp_path):
    # A stand-in `cupy` on the path: importing tinylm must not touch it (even where
    # the real CuPy is absent, an eager `try: import cupy` would be caught here).
    (tmp_path / "cupy").mkdir()
    (tmp_path / "cupy" / "__init__.py").write_text("")
    code = (
        "import sys, tinylm\n"
        "x = tinylm.tensor([1.0, 2.0], requires_grad=True)\n"
        "(x * x).sum().backward()\n"
        "print('cupy' in sys.modules)\n"
        "print(tinylm.cuda.is_available())\n"  # a broken CuPy means 'no', not an exception
    )
    out = _run_python(code, str(tmp_path)).splitlines()
    assert out == ["False", "False"]

"""The pytest plugin (entry point ``tinylm``): the op registry's samples on your own code.

Each test writes a small project of someone else's NumPy ops and runs pytest on it
with pytester; the plugin is loaded from the installed entry point, as in a user's
project.
"""

from __future__ import annotations

import textwrap

import pytest

from tinylm.testing import get_op
from tinylm.testing.pytest_plugin import RegistryCase, registry_cases

pytest_plugins = ["pytester"]

MY_OPS = textwrap.dedent('''\
    import numpy as np
    import pytest


    def unbroadcast(g, shape):
        """Sum a broadcast gradient back to shape."""
        while g.ndim > len(shape):
            g = g.sum(axis=0)
        for i, s in enumerate(shape):
            if s == 1 and g.shape[i] != 1:
                g = g.sum(axis=i, keepdims=True)
        return g


    def add_forward(a, b):
        return np.add(a, b), (np.shape(a), np.shape(b))


    def add_backward(dout, cache):
        sa, sb = cache
        return unbroadcast(dout, sa), unbroadcast(dout, sb)


    def mul_forward(a, b):
        return np.multiply(a, b), (a, b)


    def mul_backward(dout, cache):
        a, b = cache
        return unbroadcast(dout * b, np.shape(a)), unbroadcast(dout * a, np.shape(b))


    def mul_backward_no_unbroadcast(dout, cache):
        a, b = cache
        return dout * b, dout * a


    def tanh_forward(x):
        y = np.tanh(x)
        return y, y


    def tanh_backward(dout, y):
        return dout * (1 - y * y)
    ''')


def run(pytester, body: str, *args):
    pytester.makepyfile(my_ops=MY_OPS, test_mine=textwrap.dedent(body))
    return pytester.runpytest("--strict-markers", "-p", "no:cacheprovider", *args)


def test_a_correct_implementation_passes_every_sample(pytester):
    res = run(pytester, '''
        import pytest
        from my_ops import add_backward, add_forward, mul_backward, mul_forward
        from my_ops import tanh_backward, tanh_forward

        OPS = {"add": (add_forward, add_backward), "mul": (mul_forward, mul_backward),
               "tanh": (tanh_forward, tanh_backward)}

        @pytest.mark.tinylm_registry("add", "mul", "tanh")
        def test_my_ops(tinylm_sample):
            tinylm_sample.check(*OPS[tinylm_sample.name])
        ''')
    n = sum(len(get_op(k).sample_inputs()) for k in ("add", "mul", "tanh"))
    res.assert_outcomes(passed=n)


def test_a_forgotten_unbroadcast_fails_on_the_broadcast_samples_only(pytester):
    res = run(pytester, '''
        import pytest
        from my_ops import mul_backward_no_unbroadcast, mul_forward

        @pytest.mark.tinylm_registry("mul")
        def test_my_mul(tinylm_sample):
            tinylm_sample.check(mul_forward, mul_backward_no_unbroadcast)
        ''', "-v")
    outcomes = res.parseoutcomes()
    assert outcomes["failed"] >= 3 and outcomes["passed"] >= 1
    res.stdout.fnmatch_lines([
        "*test_my_mul?mul-1-float64?2, 3?, float64?3??*FAILED*",
        "*GradcheckError: check_layer: mul_forward/mul_backward_no_unbroadcast: backward "
        "failed: * a gradient of shape (2, 3) for input 1 (b) of shape (3,)*",
    ])


def test_a_wrong_forward_fails_against_the_numpy_reference(pytester):
    res = run(pytester, '''
        import numpy as np
        import pytest

        @pytest.mark.tinylm_registry("tanh")
        def test_my_tanh(tinylm_sample):
            tinylm_sample.check(lambda x: np.sin(x))
        ''')
    res.assert_outcomes(failed=len(get_op("tanh").sample_inputs()) - 1, passed=1)  # 1: 0-size
    res.stdout.fnmatch_lines(["*tanh-0-*: output 0 differs from the reference*"])


def test_keyword_arguments_use_pytorch_names(pytester):
    res = run(pytester, '''
        import numpy as np
        import pytest

        def my_sum(x, dim=None, keepdim=False):
            return np.sum(x, axis=dim, keepdims=keepdim)

        @pytest.mark.tinylm_registry("sum")
        def test_my_sum(tinylm_sample):
            tinylm_sample.check(my_sum)
        ''')
    res.assert_outcomes(passed=len(get_op("sum").sample_inputs()))


def test_misuse_is_a_collection_error_that_says_what_to_do(pytester):
    res = run(pytester, '''
        import pytest

        def test_no_marker(tinylm_sample):
            pass

        @pytest.mark.tinylm_registry("no_such_op")
        def test_unknown(tinylm_sample):
            pass
        ''')
    assert res.ret != 0
    res.stdout.fnmatch_lines([
        "*test_no_marker: the `tinylm_sample` argument needs the ops to run: mark the test "
        "with @pytest.mark.tinylm_registry('add', 'mul', ...)*",
    ])


def test_unknown_op_lists_the_registered_ones(pytester):
    res = run(pytester, '''
        import pytest

        @pytest.mark.tinylm_registry("no_such_op")
        def test_unknown(tinylm_sample):
            pass
        ''')
    assert res.ret != 0
    res.stdout.fnmatch_lines(["*no op named 'no_such_op' in the registry; registered ops: *add*"])


def test_the_marker_is_registered_for_strict_markers(pytester):
    res = pytester.runpytest("--strict-markers", "--markers")
    res.stdout.fnmatch_lines(["@pytest.mark.tinylm_registry(*ops, seed=0): *"])


def test_registry_cases_for_an_explicit_parametrize():
    params = registry_cases(["add"])
    assert len(params) == len(get_op("add").sample_inputs())
    case = params[0].values[0]
    assert isinstance(case, RegistryCase) and params[0].id == case.id
    name, sample = case
    assert name == "add" and sample is case.sample
    a = case.args[0]
    a[...] = 1e9  # a copy: the registry's sample is unchanged
    assert not (case.sample.args[0] == 1e9).any()
    with pytest.raises(KeyError, match="no op named 'nope'"):
        registry_cases("nope")

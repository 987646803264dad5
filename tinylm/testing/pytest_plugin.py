"""A pytest plugin: tinylm's op-registry samples, run on *your* implementation.

Installed with tinylm (entry point ``tinylm`` in the ``pytest11`` group), so any
project's tests can use it; without the installed entry point, add
``pytest_plugins = ["tinylm.testing.pytest_plugin"]`` to a conftest.py. A test
marked ``tinylm_registry`` runs once per registry sample of the named ops, with the
sample as its ``tinylm_sample`` argument::

    @pytest.mark.tinylm_registry("add", "mul")
    def test_my_binary_ops(tinylm_sample):
        fwd, bwd = MY_OPS[tinylm_sample.name]          # your NumPy forward/backward pair
        tinylm_sample.check(fwd, bwd)

``check(forward)`` compares ``forward(*args, **kwargs)`` with the registry's NumPy
reference; ``check(forward, backward)`` also gradient-checks the pair against
central differences of your forward (``tinylm.testing.check_layer``, CS231n style:
``forward -> out or (out, cache)``, ``backward(dout, cache) -> one gradient per
input``). The arguments are the registry's: NumPy arrays (float64, with broadcast
pairs, 0-d and zero-size shapes, strided and transposed views), numbers, and the
keyword arguments under tinylm's (PyTorch's) names, e.g. ``dim``, ``keepdim``.
``registry_cases(names)`` gives the same cases for an explicit
``@pytest.mark.parametrize``; each unpacks as ``(name, sample)``.
"""

from __future__ import annotations

import numpy as np
import pytest

__all__ = ["RegistryCase", "registry_cases"]

MARKER = "tinylm_registry"
FIXTURE = "tinylm_sample"
KERNELS_LESSON = "lesson11"  # the lesson about the fused kernels: its tests keep them on


def _grades_a_reference_lesson(item) -> bool:
    lessons = {m.name for m in item.iter_markers() if m.name.startswith("lesson")}
    return bool(lessons) and KERNELS_LESSON not in lessons


def _kernels_off_for_lessons(item):
    """A test marked with a lesson (``lesson01`` .. ``lesson10``) grades the code that
    lesson teaches: the plain reference, including a student's solution blocks. So its
    setup (fixtures included, even module-scoped ones it triggers), call and teardown run
    with the fused kernels off (``tinylm.kernels.reference()``), which would otherwise
    compute the LSTM cell or the Adam step without calling that code at all. The kernels
    are checked against the same reference by their own tests (lesson 11 and
    ``tests/test_kernels_*.py``)."""
    if not _grades_a_reference_lesson(item):
        yield
        return
    from .. import kernels

    with kernels.reference():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _kernels_off_for_lessons(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _kernels_off_for_lessons(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _kernels_off_for_lessons(item)


class RegistryCase:
    """One registry sample of one op: ``name``, ``sample`` (a SampleInput), ``info``."""

    def __init__(self, info, sample, index: int):
        self.info, self.sample, self.index = info, sample, index
        self.name = info.name

    def __iter__(self):  # name, sample = case
        return iter((self.name, self.sample))

    def __repr__(self) -> str:
        return f"RegistryCase({self.id})"

    @property
    def id(self) -> str:
        return f"{self.name}-{self.index}-{self.sample.describe()}"

    @property
    def args(self) -> tuple:
        """The positional arguments, arrays copied (your code may not change the registry's)."""
        return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in self.sample.args)

    @property
    def kwargs(self) -> dict:
        return dict(self.sample.kwargs)

    def expected(self) -> list:
        """The reference outputs as NumPy arrays: the registry's NumPy formula, or, for the
        few entries without one, tinylm's own op."""
        if self.info.ref is not None:
            with np.errstate(all="ignore"):
                want = self.info.ref(*self.args, **self.kwargs)
        else:
            from ..backend import to_numpy

            with_tinylm = self.info.op(*self.sample.tensors(requires_grad=False, copy=True),
                                       **self.kwargs)
            want = with_tinylm if isinstance(with_tinylm, (tuple, list)) else [with_tinylm]
            want = [to_numpy(t.data) for t in want]
        return [np.asarray(w) for w in (want if isinstance(want, (tuple, list)) else [want])]

    def check_forward(self, forward, rtol: float = 1e-7, atol: float = 1e-10) -> None:
        """``forward(*args, **kwargs)`` (one array or a tuple of arrays) equals the reference."""
        __tracebackhide__ = True
        got = forward(*self.args, **self.kwargs)
        got = list(got) if isinstance(got, (tuple, list)) else [got]
        want = self.expected()
        assert len(got) == len(want), (
            f"{self.id}: {len(got)} output(s), the reference has {len(want)}")
        for k, (g, w) in enumerate(zip(got, want)):
            g = np.asarray(g)
            assert g.shape == w.shape, (
                f"{self.id}: output {k} has shape {g.shape}, the reference {w.shape}")
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=f"{self.id}: output {k} differs from the "
                                       "reference")  # fmt: skip

    def check_backward(self, forward, backward, **gradcheck_kwargs) -> bool:
        """Gradient-check the pair with :func:`tinylm.testing.check_layer` (float64 central
        differences of ``forward``); True, or a GradcheckError naming input and element.
        Samples the registry does not gradient-check (a dtype cast) are skipped."""
        __tracebackhide__ = True
        from .check_layer import check_layer

        if not self.sample.gradcheck:
            pytest.skip(f"{self.id}: not gradient-checked in the registry")
        if not any(isinstance(a, np.ndarray) and a.dtype.kind == "f" and i not in
                   self.sample.nondiff for i, a in enumerate(self.sample.args)):
            return True  # nothing differentiable (integer inputs only)
        return check_layer(forward, backward, self.args, kwargs=self.kwargs,
                           nondiff=self.sample.nondiff, **gradcheck_kwargs)

    def check(self, forward, backward=None, rtol: float = 1e-7, atol: float = 1e-10) -> None:
        """Forward against the reference; with ``backward``, the gradient check too (then
        ``forward`` follows check_layer's contract: it may return ``(out, cache)``)."""
        __tracebackhide__ = True
        if backward is None:
            self.check_forward(forward, rtol, atol)
            return

        from .check_layer import split_output

        def out_only(*args, **kwargs):
            return split_output(forward(*args, **kwargs), args)[0]

        self.check_forward(out_only, rtol, atol)
        self.check_backward(forward, backward)


def registry_cases(names=None, seed: int = 0) -> list:
    """``pytest.param(RegistryCase, id=...)`` for every sample of the named ops (default:
    every op in the registry); an unknown name raises KeyError listing the valid ones."""
    from .registry import get_op, op_db

    if isinstance(names, str):
        names = [names]
    infos = [get_op(n) for n in names] if names else list(op_db)
    out = []
    for info in infos:
        for k, s in enumerate(info.sample_inputs(seed)):
            case = RegistryCase(info, s, k)
            out.append(pytest.param(case, id=case.id))
    return out


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{MARKER}(*ops, seed=0): run the test once per tinylm op-registry sample of the named "
        f"ops, passed as the `{FIXTURE}` argument (tinylm.testing.pytest_plugin)",
    )


def pytest_generate_tests(metafunc):
    if FIXTURE not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    if marker is None:
        pytest.fail(f"{metafunc.definition.nodeid}: the `{FIXTURE}` argument needs the ops to "
                    f"run: mark the test with @pytest.mark.{MARKER}('add', 'mul', ...)",
                    pytrace=False)
    names = list(marker.args) + list(marker.kwargs.get("names", ()))
    if not names:
        pytest.fail(f"{metafunc.definition.nodeid}: @pytest.mark.{MARKER}() names no op; "
                    "e.g. @pytest.mark.tinylm_registry('add')", pytrace=False)
    try:
        params = registry_cases(names, seed=marker.kwargs.get("seed", 0))
    except KeyError as e:
        pytest.fail(f"{metafunc.definition.nodeid}: {e.args[0]}", pytrace=False)
    metafunc.parametrize(FIXTURE, params)

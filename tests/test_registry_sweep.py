"""The registry sweep: every sample of every registered op, every check.

One test per (op, sample) for each check, so a failure names both. The meta-tests
prove the registry is complete: a public differentiable op (or a Function class
in tinylm.ops) without an entry fails here.
"""

from __future__ import annotations

import inspect

import pytest

import tinylm
from tinylm import ops
from tinylm.autograd import Function
from tinylm.testing import op_db
from tinylm.testing.sweep import (
    check_errors,
    check_gradgrad,
    check_gradient,
    check_kernels,
    check_layouts,
    check_reference,
)

# every case is marked with the lesson that introduces its op (OpInfo.lesson)
CASES = [pytest.param(info, s, marks=getattr(pytest.mark, info.lesson),
                      id=f"{info.name}-{k}-{s.describe()}")
         for info in op_db for k, s in enumerate(info.sample_inputs())]
OPS = [pytest.param(info, marks=getattr(pytest.mark, info.lesson), id=info.name) for info in op_db]


@pytest.mark.parametrize(("info", "sample"), CASES)
def test_forward_matches_reference(info, sample):
    check_reference(info, sample)


@pytest.mark.parametrize(("info", "sample"), CASES)
def test_gradcheck(info, sample):
    # check_gradient raises GradcheckError on a mismatch; the errors it reports must be
    # real numbers (a NaN would mean a comparison silently skipped)
    max_abs, max_rel, used = check_gradient(info, sample)
    assert max_abs == max_abs and max_rel == max_rel
    assert used < 1.0  # the same verdict, recomputed from the reported Jacobians


@pytest.mark.parametrize(("info", "sample"), CASES)
def test_gradgradcheck(info, sample):
    check_gradgrad(info, sample)


@pytest.mark.parametrize(("info", "sample"), CASES)
def test_contiguous_and_strided_agree(info, sample):
    check_layouts(info, sample)


@pytest.mark.parametrize(("info", "sample"), CASES)
def test_kernels_match_reference(info, sample):
    check_kernels(info, sample)


@pytest.mark.parametrize("info", OPS)
def test_error_inputs(info):
    check_errors(info)


# ----------------------------------------------------------------------------- meta-tests


def test_every_public_differentiable_op_has_an_entry():
    names = {i.name for i in op_db}
    missing = [n for n in ops.DIFFERENTIABLE if n not in names]
    assert not missing, f"ops without a registry entry: {missing}"
    assert len(names) == len(op_db), "two registry entries share a name"
    # "F.linear", "nn.Linear": tinylm.nn's entries, checked in tests/test_nn_layers.py
    unknown = sorted(n for n in names - set(ops.DIFFERENTIABLE) if "." not in n)
    assert not unknown, f"registry entries for ops not listed in ops.DIFFERENTIABLE: {unknown}"


def _function_classes() -> set:
    """Every Function subclass defined in tinylm.ops or tinylm.nn (abstract bases aside)."""
    seen, stack = set(), [Function]
    while stack:
        c = stack.pop()
        for sub in c.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith(("tinylm.ops.", "tinylm.nn.")) and "forward" in vars(sub):
                seen.add(sub)
    return seen


def _graph_functions(tensors) -> set:
    found, stack, visited = set(), list(tensors), set()
    while stack:
        t = stack.pop()
        if id(t) in visited or t._ctx is None:
            continue
        visited.add(id(t))
        found.add(t._ctx.fn)
        stack.extend(x for x in t._ctx.inputs if x is not None)
    return found


def test_every_function_class_is_exercised_by_the_registry():
    """Walk the forward graph of every sample and the graph of its gradient (built with
    create_graph=True, so backward-only Functions such as IndexAdd show up too)."""
    used = set()
    for info, sample in (p.values for p in CASES):
        args = sample.tensors()
        y = info.op(*args, **sample.kwargs)
        ys = [y] if isinstance(y, tinylm.Tensor) else list(y)
        used |= _graph_functions(ys)
        live = [t for t in ys if t.requires_grad]
        leaves = [a for a in args if isinstance(a, tinylm.Tensor) and a.requires_grad]
        if live and leaves and sample.gradcheck:
            seeds = [tinylm.ones_like(t, requires_grad=True) for t in live]
            gs = tinylm.autograd.grad(live, leaves, seeds, create_graph=True, allow_unused=True)
            used |= _graph_functions([g for g in gs if g is not None])
    missing = sorted(c.__qualname__ for c in _function_classes() - used)
    assert not missing, f"Function classes no registry sample exercises: {missing}"


def test_meta_test_would_catch_a_missing_entry(monkeypatch):
    """The completeness check is not vacuous: drop an entry and it fails."""
    monkeypatch.setattr(ops, "DIFFERENTIABLE", (*ops.DIFFERENTIABLE, "brand_new_op"))
    with pytest.raises(AssertionError, match="brand_new_op"):
        test_every_public_differentiable_op_has_an_entry()


def test_every_entry_documents_itself():
    for info in op_db:
        assert callable(info.op) and inspect.signature(info.op) is not None
        assert info.sample_inputs(), f"{info.name} has no samples"
        assert any(s.gradcheck for s in info.sample_inputs()), f"{info.name}: nothing gradchecked"

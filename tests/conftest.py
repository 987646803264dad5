"""Fixtures shared by the test suite: the one ``device`` fixture, and the GPU skip rule.

A test that should run on every backend takes ``device``: it runs once with ``"cpu"``
and once with ``"cuda"`` (that case is marked ``gpu``, so ``pytest -m gpu`` selects it
and ``pytest -m "not gpu"`` leaves it out). A test that compares a GPU with the CPU
takes ``cuda`` instead. Without a usable GPU (``tinylm.cuda.is_available()`` is False:
no CuPy, no driver or no device) every test marked ``gpu`` is skipped, at setup time,
never at collection: collecting the suite imports no GPU library.

(The BLAS thread setup for the whole session is in the repository's root conftest.py.)
"""

from __future__ import annotations

import functools

import pytest

import tinylm

NO_GPU = "needs a CUDA GPU with CuPy (tinylm.cuda.is_available() is False)"


@functools.cache
def cuda_available() -> bool:
    """Asked once per session: the answer does not change, and importing CuPy is slow."""
    return tinylm.cuda.is_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked ``gpu`` on a machine without a GPU, whatever its fixtures."""
    if item.get_closest_marker("gpu") is not None and not cuda_available():
        pytest.skip(NO_GPU)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request) -> str:
    """``"cpu"``, then ``"cuda"`` (marked ``gpu``; skipped without a GPU)."""
    if request.param == "cuda" and not cuda_available():
        pytest.skip(NO_GPU)
    return request.param


@pytest.fixture
def cuda() -> str:
    """``"cuda"``, for a test that compares the GPU against the CPU; skipped without a
    GPU. Tests using it should be marked ``gpu`` (tests/test_gpu.py marks the module)."""
    if not cuda_available():
        pytest.skip(NO_GPU)
    return "cuda"


@pytest.fixture
def spy_kernels(monkeypatch):
    """``spy_kernels(module, name, ...)`` wraps those functions of a kernel module so each
    call appends its name to the returned list: a test can tell that a kernel ran."""

    def spy(module, *names) -> list:
        calls = []
        for name in names:
            real = getattr(module, name)

            def counting(*args, _real=real, _name=name, **kw):
                calls.append(_name)
                return _real(*args, **kw)

            monkeypatch.setattr(module, name, counting)
        return calls

    return spy

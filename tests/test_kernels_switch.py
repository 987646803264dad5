"""The kernel switch: TINYLM_KERNELS, kernels.set_enabled and kernels.reference()."""

import os
import subprocess
import sys

import pytest

import tinylm
from tinylm import kernels

pytestmark = pytest.mark.lesson11  # lesson 11 (kernels and backends) is graded by these


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize(("value", "on"), [("reference", False), ("off", False),
                                           ("numba", True), ("", True)])
def test_environment_variable_sets_the_default(value, on):
    r = _run("import tinylm.kernels as k; print(k.enabled())", TINYLM_KERNELS=value)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(on)


def test_a_bad_environment_value_names_the_valid_ones():
    r = _run("import tinylm", TINYLM_KERNELS="fast")
    assert r.returncode != 0
    assert "TINYLM_KERNELS='fast'" in r.stderr and "'reference'" in r.stderr


def test_reference_context_restores_the_setting():
    before = kernels.enabled()
    with kernels.reference():
        assert not kernels.enabled()
        with kernels.reference():
            assert not kernels.enabled()
        assert not kernels.enabled()
    assert kernels.enabled() == before


def test_set_enabled_returns_the_old_value_and_checks_its_argument():
    old = kernels.set_enabled(False)
    try:
        assert kernels.set_enabled(False) is False
    finally:
        kernels.set_enabled(old)
    with pytest.raises(TypeError, match="set_enabled: expected True or False, got 'yes'"):
        kernels.set_enabled("yes")


def test_import_tinylm_does_not_import_numba_kernels():
    # kernel modules compile (or load from cache) on first use, not at import
    r = _run("import sys, tinylm; print(sorted(m for m in sys.modules "
             "if m.startswith('tinylm.kernels.')))")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_unknown_kernel_module_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kernels.nope  # noqa: B018


@pytest.mark.parametrize("name", kernels.MODULES)
def test_every_kernel_module_has_bench_cases_and_tests(name):
    module = getattr(kernels, name)
    assert callable(getattr(module, "bench_cases", None)), f"kernels.{name} has no bench_cases"
    cases = module.bench_cases(quick=True)
    assert cases and all(c.name and c.size and callable(c.kernel) for c in cases)
    here = os.path.dirname(__file__)
    assert os.path.exists(os.path.join(here, f"test_kernels_{name}.py"))


def test_a_training_step_gives_close_results_with_and_without_kernels():
    from tinylm.models import RNNLMConfig, build_model

    losses = []
    for on in (True, False):
        old = kernels.set_enabled(on)
        try:
            tinylm.manual_seed(0)
            model = build_model(RNNLMConfig(vocab_size=11, embed_dim=8, hidden_size=16))
            opt = tinylm.optim.Adam(model.parameters(), lr=1e-2)
            ids = tinylm.randint(0, 11, (4, 9))
            for _ in range(3):
                logits, _ = model(ids[:, :-1])
                loss = tinylm.nn.functional.cross_entropy(
                    logits.reshape(-1, 11), ids[:, 1:].reshape(-1))
                opt.zero_grad()
                loss.backward()
                opt.step()
            losses.append(loss.item())
        finally:
            kernels.set_enabled(old)
    # float32, three Adam steps: the kernels' few-ulp differences stay far below 1e-4
    assert abs(losses[0] - losses[1]) < 1e-4 * abs(losses[1])

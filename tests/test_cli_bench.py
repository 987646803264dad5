"""`tinylm bench`: every section reports, the JSON holds together, missing kernel modules are
skipped. Never asserts a speed (that depends on the machine and its load)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import types

import pytest

import tinylm
from tinylm import bench, cli
from tinylm.bench import kernel_table, lm
from tinylm.bench._util import compare, markdown, target, thread_counts, threads
from tinylm.kernels._common import BenchCase

SECTIONS = ("lm", "kernels", "overhead", "startup")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def _check_targets(doc: dict) -> None:
    assert doc["targets"], "no target rows"
    for t in doc["targets"]:
        assert t["op"] in (">=", "<=") and t["goal"] > 0 and t["unit"] in ("x", "s", "us")
        if t["measured"] is None:
            assert t["met"] is None
        else:
            assert t["measured"] > 0
            assert t["met"] == (t["measured"] >= t["goal"] if t["op"] == ">="
                                else t["measured"] <= t["goal"])


def _check_lm(sec: dict, have_torch: bool) -> None:
    s = sec["settings"]
    runs = {(r["model"], r["run"]): r for r in sec["rows"]}
    assert {m for m, _ in runs} == {"lstm", "gpt"}
    for model in ("lstm", "gpt"):
        ours = runs[(model, "tinylm")]
        for key, _ in lm.RUNS[model]:
            r = runs[(model, key)]
            if r["tok_s"] is None:
                assert not have_torch and key.startswith("torch")
                assert r["tinylm_over_this"] is None
                continue
            assert r["step_s_median"] > 0 and r["step_s_min"] <= r["step_s_median"]
            assert _close(r["tok_s"], s["B"] * s["T"] / r["step_s_median"])
            assert _close(r["tinylm_over_this"], ours["tok_s"] / r["tok_s"])
            assert abs(r["first_loss"] - math.log(s["V"])) < 0.2  # an untrained model
        # the kernels and the reference compute the same first loss (same weights, data)
        assert abs(ours["first_loss"] - runs[(model, "tinylm_ref")]["first_loss"]) < 1e-4


def test_quick_run_reports_every_section_and_writes_consistent_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tinylm.cli", "bench", "--quick", "--json", str(out)],
        capture_output=True, text=True, encoding="utf-8", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stdout = proc.stdout
    assert "CPUs" in stdout and "threads: NumPy/OpenBLAS 1, Numba 1" in stdout
    for title in bench.TITLES.values():
        assert f"## {title}" in stdout
    assert "## Targets" in stdout and "measured targets met" in stdout
    for name in SECTIONS:  # progress lines go to stderr
        assert f"{name}: done" in proc.stderr

    doc = json.loads(out.read_text(encoding="utf-8"))
    assert set(SECTIONS) <= set(doc) and doc["settings"]["quick"] is True
    assert doc["threads"]["blas"] in (1, None) and doc["threads"]["numba"] == 1
    have_torch = doc["machine"]["torch"] is not None
    _check_lm(doc["lm"], have_torch)

    k = doc["kernels"]
    listed = {r["module"] for r in k["rows"]} | {s["module"] for s in k["skipped"]}
    assert listed == set(tinylm.kernels.MODULES)  # every module: a row, or skipped and why
    for r in k["rows"]:
        assert r["error"] is None, r
        assert r["kernel_s"] > 0 and r["numpy_s"] > 0 and r["first_call_s"] > 0
        assert _close(r["speedup_vs_numpy"], r["numpy_s"] / r["kernel_s"])
        if r["torch_s"] is not None:
            assert _close(r["speedup_vs_torch"], r["torch_s"] / r["kernel_s"])

    o = doc["overhead"]
    assert len(o["results"]) == 10
    for r in o["results"]:
        assert r["numpy_us"] > 0 and r["tinylm_fwd_us"] > 0 and r["tinylm_fwd_bwd_us"] > 0
        assert _close(r["tinylm_fwd_per_op_us"], r["tinylm_fwd_us"] / r["n_ops"])

    st = doc["startup"]
    assert st["cold"] is None  # --quick: warm only
    w = st["warm"]
    assert w["kernels"] is True and math.isfinite(w["loss"])
    assert _close(w["total_s"], w["import_s"] + w["build_s"] + w["first_step_s"])
    assert 0 < w["total_s"] < w["process_s"]

    _check_targets(doc)
    names = " ".join(t["name"] for t in doc["targets"])
    for part in ("nn.LSTM", "LSTMCell loop", "tiny GPT", "per-op overhead", "warm Numba cache"):
        assert part in names


def test_without_torch_the_torch_runs_show_dashes(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(bench, "optional_torch", lambda: None)
    out = tmp_path / "b.json"
    argv = ["bench", "--quick", "--only", "lm", "--steps", "1", "--json", str(out)]
    assert cli.main(argv) == 0
    stdout = capsys.readouterr().out
    assert "torch not installed" in stdout
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["machine"]["torch"] is None and set(doc) >= {"lm", "targets"}
    assert "kernels" not in doc and "startup" not in doc
    _check_lm(doc["lm"], have_torch=False)
    for t in doc["targets"]:
        assert t["measured"] is None and t["met"] is None
        assert t["note"] == "PyTorch not installed"
    assert "0 of 0 measured targets met (3 in all)" in stdout


def test_thread_settings_are_restored():
    before = thread_counts()
    with threads(1) as now:
        assert now["numba"] == 1
        assert now["blas"] in (1, None)
    assert thread_counts() == before


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--only", "lm,gpu"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown section 'gpu'" in err and "lm,kernels,overhead,startup" in err


# ----------------------------------------------------------------------------- kernel table


def _fake_module(monkeypatch, name: str, **attrs) -> None:
    mod = types.ModuleType(f"tinylm.kernels.{name}")
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, mod.__name__, mod)


def _boom():
    raise ValueError("bad input")


def test_kernel_table_skips_what_it_cannot_time(monkeypatch):
    """Fake kernel modules: one with cases (one of them broken), one without bench_cases,
    one whose bench_cases raises; and a module that does not exist."""

    def cases(quick=False):
        return [
            BenchCase("fast op", "8", kernel=lambda: sum(range(8)),
                      numpy=lambda: sum(range(800)), numpy_label="np.thing",
                      target=2.0),  # fmt: skip
            BenchCase("vs torch", "8", kernel=lambda: None, numpy=lambda: None,
                      numpy_label="np.other", torch=None, target=1.0, target_vs="torch"),
            BenchCase("broken", "8", kernel=_boom, numpy=lambda: None, numpy_label="np.x"),
        ]

    _fake_module(monkeypatch, "fake_ok", bench_cases=cases)
    _fake_module(monkeypatch, "fake_none")
    _fake_module(monkeypatch, "fake_raise", bench_cases=lambda quick=False: _boom())
    modules = ("fake_ok", "fake_none", "fake_raise", "fake_missing")
    res = kernel_table.run(quick=True, repeats=2, modules=modules)

    rows = {r["name"]: r for r in res["rows"]}
    assert rows["fast op"]["error"] is None and rows["fast op"]["speedup_vs_numpy"] > 0
    assert rows["broken"]["error"] == "ValueError: bad input"
    reasons = {s["module"]: s["reason"] for s in res["skipped"]}
    assert reasons == {"fake_none": "no bench_cases()",
                       "fake_raise": "bench_cases failed: ValueError: bad input",
                       "fake_missing": "module not there yet"}  # fmt: skip

    text = kernel_table.table(res)
    for word in ("fast op", "np.thing", "error: ValueError", "skipped: no bench_cases()",
                 "skipped: module not there yet"):
        assert word in text
    tg = {t["name"].split(",")[0]: t for t in kernel_table.targets(res)}
    assert set(tg) == {"fast op", "vs torch"}  # "broken" has no target
    assert tg["fast op"]["measured"] == rows["fast op"]["speedup_vs_numpy"]
    assert tg["vs torch"]["measured"] is None and tg["vs torch"]["note"] == "PyTorch not installed"


def test_targets_and_tables_format():
    t = [target("a", "lm", 0.7, 0.6, ">=", "x"), target("b", "startup", 1.2, 1.0, "<=", "s"),
         target("c", "lm", None, 2.0, ">=", "x", "PyTorch not installed")]
    assert [x["met"] for x in t] == [True, False, None]
    text = bench.targets_table(t)
    assert "| a | 0.70x | >= 0.6x | met |" in text
    assert "| b | 1.200 s | <= 1 s | NOT met |" in text
    assert "| c | — | >= 2x | — | PyTorch not installed |" in text
    # numeric columns align right, text columns left
    assert markdown([("name", "ms"), ("x", "1.5"), ("y", "—")]).splitlines()[1] == "| --- | ---: |"


def test_compare_interleaves_and_caps_the_rounds_of_slow_cases():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: (calls.append("b"), time.sleep(0.03))}
    med, rounds = compare(fns, repeats=9, target_s=0.01, budget_s=0.1)
    assert rounds == 3  # a round takes ~0.05 s: 9 would overrun the 0.1 s budget; 3 at least
    assert med["b"] >= 0.03 and 0 < med["a"] < med["b"]
    assert calls[-2:] == ["a", "b"]  # each round: a batch of calls of a, then of b
    assert compare(fns, repeats=2, target_s=0.01)[1] == 2  # 3 or fewer: as asked

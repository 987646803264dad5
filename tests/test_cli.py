"""`tinylm gradcheck`: the table, --op, --list, and exit status 1 on a failure."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import tinylm
from tinylm import cli
from tinylm.autograd import Function
from tinylm.testing import OpInfo, SampleInput, op_db


def test_gradcheck_one_op_prints_a_passing_row(capsys):
    assert cli.main(["gradcheck", "--op", "tanh", "--quiet"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("tanh"))
    assert row.split()[-1] == "pass"
    assert int(row.split()[1]) == len(next(i for i in op_db if i.name == "tanh").sample_inputs())
    assert "1/1 ops pass" in out


def test_unknown_op_is_refused_with_the_list(capsys):
    assert cli.main(["gradcheck", "--op", "tanhh", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no op named 'tanhh'" in err and "tanh" in err


class _WrongTanh(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.tanh(x)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return dy * (1.0 - x * x)  # bug: should be 1 - tanh(x)^2


def test_a_wrong_backward_fails_the_command(monkeypatch, capsys):
    bad = OpInfo("tanh", lambda x: _WrongTanh.apply(x),
                 lambda rng: [SampleInput((rng.standard_normal((2, 3)),))], ref=np.tanh)
    monkeypatch.setattr("tinylm.testing.registry.op_db", [bad])
    assert cli.main(["gradcheck", "--op", "tanh", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "Jacobian mismatch for input 0" in out


def test_list_names_every_registered_op(capsys):
    assert cli.main(["gradcheck", "--list"]) == 0
    out = capsys.readouterr().out
    assert {line.split()[0] for line in out.splitlines()} == {i.name for i in op_db}


@pytest.mark.slow
def test_console_script_runs_the_whole_sweep():
    """The README's main job, as a user runs it (python -m keeps it on this interpreter)."""
    r = subprocess.run([sys.executable, "-m", "tinylm.cli", "gradcheck", "--quiet"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"{len(op_db)}/{len(op_db)} ops pass" in r.stdout
    assert tinylm.__version__

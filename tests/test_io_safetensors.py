"""tinylm's files and the `safetensors` library's files are the same format, both ways.

`safetensors` is an optional oracle (not a dependency): these tests skip without it.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinylm
import tinylm.nn as nn
from tinylm.io import load_checkpoint, save_checkpoint
from tinylm.optim import Adam

st_numpy = pytest.importorskip("safetensors.numpy")
safe_open = pytest.importorskip("safetensors").safe_open

DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "float16", "uint32", "int32", "float32",
          "uint64", "int64", "float64", "complex64"]  # fmt: skip


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for i, dtype in enumerate(DTYPES):
        a = rng.standard_normal((2, 3)) * 50
        out[f"{dtype}.w"] = a > 0 if dtype == "bool" else a.astype(dtype)
        out[f"{dtype}.scalar"] = np.array(i, dtype=dtype)
        out[f"{dtype}.empty"] = np.zeros((0, 3), dtype=dtype)
    out["名前.π"] = np.arange(4, dtype=np.float32)
    out["strided"] = np.arange(12, dtype=np.float64).reshape(3, 4).T
    out["big_endian"] = np.arange(5, dtype=">i4")
    return out


def test_files_written_by_tinylm_load_in_safetensors(tmp_path):
    tensors = _tensors()
    p = tmp_path / "tinylm.safetensors"
    tinylm.save(tensors, p, {"note": "written by tinylm ✓"})
    theirs = st_numpy.load_file(str(p))
    assert set(theirs) == set(tensors)
    for name, a in tensors.items():
        assert theirs[name].dtype == a.dtype.newbyteorder("=") and theirs[name].shape == a.shape
        np.testing.assert_array_equal(theirs[name], a)
    with safe_open(str(p), framework="np") as f:
        meta = f.metadata()
    assert meta["note"] == "written by tinylm ✓" and len(meta["tinylm.sha256"]) == 64


def test_files_written_by_safetensors_load_in_tinylm(tmp_path):
    tensors = {k: np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("="))
               for k, v in _tensors().items()}
    p = tmp_path / "theirs.safetensors"
    st_numpy.save_file(tensors, str(p), metadata={"format": "np", "ключ": "значение"})
    ours, meta = tinylm.load(p, with_metadata=True)
    assert meta == {"format": "np", "ключ": "значение"}  # no checksum: none is verified
    assert set(ours) == set(tensors)
    for name, a in tensors.items():
        assert ours[name].dtype == a.dtype and ours[name].shape == a.shape
        np.testing.assert_array_equal(ours[name].numpy(), a)
    # written back by tinylm, the same tensors again
    tinylm.save(ours, tmp_path / "again.safetensors")
    again = st_numpy.load_file(str(tmp_path / "again.safetensors"))
    for name, a in tensors.items():
        np.testing.assert_array_equal(again[name], a)


def test_an_empty_file_both_ways(tmp_path):
    tinylm.save({}, tmp_path / "a.safetensors")
    assert st_numpy.load_file(str(tmp_path / "a.safetensors")) == {}
    st_numpy.save_file({}, str(tmp_path / "b.safetensors"))
    assert tinylm.load(tmp_path / "b.safetensors") == {}


def test_a_training_checkpoint_is_readable_by_safetensors(tmp_path):
    tinylm.manual_seed(0)
    model = nn.Linear(4, 3)
    opt = Adam(model.parameters(), lr=0.01)
    (model(tinylm.randn(2, 4)) ** 2).mean().backward()
    opt.step()
    p = tmp_path / "ckpt.safetensors"
    save_checkpoint(p, model=model, optimizer=opt, step=1, config={"d": 4})
    theirs = st_numpy.load_file(str(p))
    np.testing.assert_array_equal(theirs["model.weight"], model.weight.data)
    np.testing.assert_array_equal(theirs["optim.state.0.exp_avg"],
                                  opt.state[model.weight]["exp_avg"])
    with safe_open(str(p), framework="np") as f:
        meta = f.metadata()
    assert meta["tinylm.config"] == '{"d": 4}'
    # safetensors lays tensors out in its own order, so a rewrite that keeps tinylm's
    # checksum of the old data section is caught; without it, the checkpoint loads
    re = tmp_path / "re.safetensors"
    st_numpy.save_file(theirs, str(re), metadata=meta)
    with pytest.raises(tinylm.CheckpointError, match="checksum mismatch.*rewritten"):
        load_checkpoint(re)
    del meta["tinylm.sha256"]
    st_numpy.save_file(theirs, str(re), metadata=meta)
    ckpt = load_checkpoint(re)
    assert ckpt.step == 1 and ckpt.config == {"d": 4}
    np.testing.assert_array_equal(ckpt.model_state["bias"].numpy(), model.bias.data)

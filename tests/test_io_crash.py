"""A save killed at a random moment never leaves a damaged checkpoint behind.

Each trial starts a child process that saves two few-MB checkpoints, A and B, over the same
path in a loop, and SIGKILLs it after a random delay: in the middle of hashing, writing,
fsync or the rename. While it runs, the parent keeps reading the path, and after the kill
it reads it again: every read must be exactly A's bytes or exactly B's (both complete,
valid files), never anything else. The next save then removes the temp files the killed
children left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import tinylm

TRIALS = 20
MAX_DELAY = 0.25  # seconds; one save of the ~4 MB checkpoint takes ~20 ms here

# Run by the parent (to know the expected bytes) and by each child (to write them).
SETUP = """
import numpy as np
rng = np.random.default_rng(1234)
A = {f"layer{i}.weight": rng.standard_normal((500, 500)).astype(np.float32) for i in range(4)}
A["step"] = np.array(1, dtype=np.int64)
B = {k: v + 1 for k, v in A.items()}
VERSIONS = [(A, {"version": "A"}), (B, {"version": "B"})]
"""

CHILD = SETUP + """
import sys
import tinylm
path = sys.argv[1]
print("ready", flush=True)
i = 0
while True:
    tensors, meta = VERSIONS[i % 2]
    tinylm.save(tensors, path, meta)
    i += 1
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL and replacing open files are POSIX")
def test_a_killed_save_never_leaves_a_damaged_checkpoint(tmp_path):
    ns: dict = {}
    exec(SETUP, ns)
    good = {}
    for tensors, meta in ns["VERSIONS"]:
        ref = tmp_path / f"ref-{meta['version']}.safetensors"
        tinylm.save(tensors, ref, meta)
        good[ref.read_bytes()] = tensors
    (a_bytes, _), (b_bytes, _) = good.items()
    assert a_bytes != b_bytes

    folder = tmp_path / "run"
    folder.mkdir()
    target = folder / "ckpt.safetensors"
    target.write_bytes(a_bytes)
    rng = np.random.default_rng(0)
    seen = {"A": 0, "B": 0}
    orphans = 0
    for trial in range(TRIALS):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + rng.uniform(0, MAX_DELAY)
            while time.monotonic() < deadline:  # a reader during the saves sees A or B
                assert target.read_bytes() in good, f"trial {trial}: a partial file was visible"
        finally:
            child.kill()  # SIGKILL: no cleanup handler runs
            child.wait()
            child.stdout.close()
        blob = target.read_bytes()
        assert blob in good, f"trial {trial}: the checkpoint is damaged after the kill"
        tensors, meta = tinylm.load(target, numpy=True, with_metadata=True)
        seen[meta["version"]] += 1
        for name, expected in good[blob].items():
            np.testing.assert_array_equal(tensors[name], expected)
        orphans += any(".tmp-" in p.name for p in folder.iterdir())

    print(f"after the kills: {seen} complete files, {orphans} kills left a temp file")
    assert orphans > 0, "no kill landed inside a save; raise MAX_DELAY or the file size"
    tinylm.save({"x": np.ones(1)}, target)  # the killed children are gone: their temps go
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt.safetensors"]

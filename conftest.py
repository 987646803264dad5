"""Test-session setup shared by tests/ and the notebooks nbmake executes.

One BLAS thread per process: CI runs `pytest -n 2` on 2 cores, and two processes each
running a 2-thread OpenBLAS oversubscribe the machine; OpenBLAS's spinning threads then
make small matrix products 10-40x slower (measured here on lesson 05's MLP). Results are
bit-identical either way. Set before NumPy is imported by any test, and inherited by the
xdist workers and notebook kernels this process starts.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

#!/usr/bin/python3
"""Writes the tiny .npy fixtures in tests/data/numpy/ with numpy itself, so the C
reader is tested against files numpy produced. Run: /usr/bin/python3 tests/data/make_numpy_fixtures.py"""
import os
import numpy as np

d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "numpy")
os.makedirs(d, exist_ok=True)
np.save(os.path.join(d, "f32_2x3.npy"), np.arange(6, dtype=np.float32).reshape(2, 3) / 4)
np.save(os.path.join(d, "f64_5.npy"), np.array([0.1, -2.5, 1e-300, 3.0e300, np.pi]))
np.save(os.path.join(d, "f64_scalar.npy"), np.float64(7.25))
np.save(os.path.join(d, "i64_2x2x2.npy"), np.arange(-4, 4, dtype=np.int64).reshape(2, 2, 2))
np.save(os.path.join(d, "f32_fortran.npy"), np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
np.save(os.path.join(d, "f64_bigendian.npy"), np.array([1.0, 2.0], dtype=">f8"))
# format 2.0 (4-byte header length)
with open(os.path.join(d, "f32_v2.npy"), "wb") as f:
    np.lib.format.write_array(f, np.array([1.5, -1.5], dtype=np.float32), version=(2, 0))

#!/usr/bin/env python3
"""Writes a `sbida train --resume` state (params = ema = the model's weights, no Adam
moments, step 0) from a model file, so that a new run starts from a shipped model's
weights with a fresh optimizer and its own warm-up (a warm start).
Usage: models/warmstart-state.py MODEL.safetensors OUT.state
The flat parameter vector lays the tensors out in file order, each at an offset
rounded up to 16 floats (core/nn/nn_model.c)."""
import json
import struct
import sys


def main(src, dst):
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    meta = head.pop("__metadata__", {})
    total = int(meta["nn.n_params"])
    flat = bytearray(4 * total)
    cur = 0
    for t in head.values():  # file order = the model's tensor order
        a, b = t["data_offsets"]
        off = (cur + 15) & ~15
        flat[4 * off:4 * off + (b - a)] = data[a:b]
        cur = off + (b - a) // 4
    if (cur + 15) & ~15 != total:  # n_params ends on a 16-float boundary
        sys.exit(f"warmstart-state: laid out {cur} floats, the model has {total}")
    nb = len(flat)
    hdr = {"__metadata__": {"step": "0"},
           "params": {"dtype": "F32", "shape": [total], "data_offsets": [0, nb]},
           "ema": {"dtype": "F32", "shape": [total], "data_offsets": [nb, 2 * nb]}}
    hb = json.dumps(hdr, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + bytes(flat) + bytes(flat))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""PyTorch twin of core/nn/nn_resnet.c (same names, shapes and math), shared by
the fixture generator and the benchmark. Run with /usr/bin/python3 (Debian torch)."""
import json
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def sinusoidal(s, dim):
    """s (B, ns) -> (B, ns*dim): [sin(v f_j), cos(v f_j)], f_j = 1000^(j/(h-1)).
    Computed in float64 like the C code, then cast to float32."""
    h = dim // 2
    step = math.log(1000.0) / max(h - 1, 1)
    f = torch.exp(torch.arange(h, dtype=torch.float64) * step)
    a = s.double()[..., None] * f
    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1).reshape(s.shape[0], -1).float()


class Block(nn.Module):
    def __init__(self, W, G):
        super().__init__()
        self.norm1 = nn.GroupNorm(G, W)
        self.conv1 = nn.Conv1d(W, W, 3, padding=1, padding_mode="circular")
        self.norm2 = nn.GroupNorm(G, W)
        self.conv2 = nn.Conv1d(W, W, 3, padding=1, padding_mode="circular")

    def forward(self, h, e):
        u = self.conv1(F.silu(self.norm1(h)))
        if e is not None:
            u = u + e[:, :, None]
        return h + self.conv2(F.silu(self.norm2(u)))


class ResNet1d(nn.Module):
    def __init__(self, cin, cout, width, blocks, groups, n_scalars, emb_dim):
        super().__init__()
        self.width, self.nb, self.ns, self.emb_dim = width, blocks, n_scalars, emb_dim
        self.in_conv = nn.Conv1d(cin, width, 3, padding=1, padding_mode="circular")
        if n_scalars:
            self.emb = nn.Sequential(nn.Linear(n_scalars * emb_dim, emb_dim), nn.SiLU(),
                                     nn.Linear(emb_dim, blocks * width))
        self.blocks = nn.ModuleList([Block(width, groups) for _ in range(blocks)])
        self.out_norm = nn.GroupNorm(groups, width)
        self.out_conv = nn.Conv1d(width, cout, 3, padding=1, padding_mode="circular")

    def forward(self, x, s=None):
        e = None
        if self.ns:
            e = self.emb(sinusoidal(s, self.emb_dim)).reshape(x.shape[0], self.nb, self.width)
        h = self.in_conv(x)
        for i, b in enumerate(self.blocks):
            h = b(h, e[:, i] if e is not None else None)
        return self.out_conv(F.silu(self.out_norm(h)))


def write_safetensors(path, tensors, meta=None):
    """Minimal safetensors writer (float32 only): no dependency beyond numpy."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

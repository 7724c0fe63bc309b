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


def _conv(dims, cin, cout, k, stride=1):
    Conv = nn.Conv2d if dims == 2 else nn.Conv1d
    if k == 1:
        return Conv(cin, cout, 1)
    return Conv(cin, cout, k, stride=stride, padding=k // 2, padding_mode="circular")


class UBlock(nn.Module):
    """Residual block cin -> cout (core/nn/nn_unet.c): GN, SiLU, conv3, + emb
    bias, GN, SiLU, conv3, plus the input or its 1x1 conv."""

    def __init__(self, dims, cin, cout, G):
        super().__init__()
        self.norm1 = nn.GroupNorm(G, cin)
        self.conv1 = _conv(dims, cin, cout, 3)
        self.norm2 = nn.GroupNorm(G, cout)
        self.conv2 = _conv(dims, cout, cout, 3)
        if cin != cout:
            self.skip = _conv(dims, cin, cout, 1)
        self.has_skip = cin != cout

    def forward(self, h, e):
        u = self.conv1(F.silu(self.norm1(h)))
        if e is not None:
            u = u + e.reshape(e.shape + (1,) * (h.dim() - 2))
        r = self.skip(h) if self.has_skip else h
        return r + self.conv2(F.silu(self.norm2(u)))


class ULevel(nn.Module):
    def __init__(self, dims, blocks, cin, width, G, down_from=None, up_from=None):
        super().__init__()
        if down_from is not None:
            self.down = _conv(dims, down_from, width, 3, stride=2)
        if up_from is not None:
            self.up = _conv(dims, up_from, width, 3)
        self.blocks = nn.ModuleList([UBlock(dims, cin if b == 0 else width, width, G)
                                     for b in range(blocks)])


class UNet(nn.Module):
    """PyTorch twin of core/nn/nn_unet.c (same names, shapes and math)."""

    def __init__(self, dims, cin, cout, widths, blocks, mid, groups, n_scalars, emb_dim):
        super().__init__()
        L = len(widths)
        self.dims, self.L, self.ns, self.emb_dim = dims, L, n_scalars, emb_dim
        self.in_conv = _conv(dims, cin, widths[0], 3)
        couts = [w for w in widths for _ in range(blocks)] + [widths[-1]] * mid
        couts += [widths[l] for l in range(L - 2, -1, -1) for _ in range(blocks)]
        self.couts = couts
        if n_scalars:
            self.emb = nn.Sequential(nn.Linear(n_scalars * emb_dim, emb_dim), nn.SiLU(),
                                     nn.Linear(emb_dim, sum(couts)))
        self.enc = nn.ModuleList([ULevel(dims, blocks, widths[l], widths[l], groups,
                                         down_from=widths[l - 1] if l else None) for l in range(L)])
        self.mid = nn.ModuleList([UBlock(dims, widths[-1], widths[-1], groups) for _ in range(mid)])
        self.dec = nn.ModuleList([ULevel(dims, blocks, 2 * widths[l], widths[l], groups,
                                         up_from=widths[l + 1]) for l in range(L - 1)])
        self.out_norm = nn.GroupNorm(groups, widths[0])
        self.out_conv = _conv(dims, widths[0], cout, 3)

    def forward(self, x, s=None):
        es = [None] * len(self.couts)
        if self.ns:
            e = self.emb(sinusoidal(s, self.emb_dim))
            es = list(torch.split(e, self.couts, dim=1))
        k, skips = 0, []
        h = self.in_conv(x)
        for l, lev in enumerate(self.enc):
            if l:
                h = lev.down(h)
            for b in lev.blocks:
                h = b(h, es[k])
                k += 1
            skips.append(h)
        for b in self.mid:
            h = b(h, es[k])
            k += 1
        for l in range(self.L - 2, -1, -1):
            lev = self.dec[l]
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([lev.up(h), skips[l]], dim=1)
            for b in lev.blocks:
                h = b(h, es[k])
                k += 1
        return self.out_conv(F.silu(self.out_norm(h)))

def fixture_tensors(net, x, s, target, lr, wd, steps):
    """The tensors of a parity fixture: the weights, inputs, outputs and MSE
    loss of one forward, ALL gradients (parameters and input), and the losses
    of `steps` AdamW steps from those weights (the net is trained in place)."""
    out = {f"param.{k}": v.detach().clone() for k, v in net.state_dict().items()}
    xg = x.clone().requires_grad_(True)
    y = net(xg, s)
    loss = torch.mean((y - target) ** 2)
    loss.backward()
    out.update({"x": x, "scalars": s, "target": target, "y": y.detach(), "loss": loss.detach().reshape(1),
                "grad.input": xg.grad})
    for k, p in net.named_parameters():
        out[f"grad.{k}"] = p.grad.detach().clone()
    net.zero_grad()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=wd)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        l = torch.mean((net(x, s) - target) ** 2)
        l.backward()
        opt.step()
        losses.append(l.item())
    out["adamw_losses"] = torch.tensor(losses)
    return out


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

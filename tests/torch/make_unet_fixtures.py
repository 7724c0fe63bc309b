"""Writes tests/data/nn/unet{1d,2d}_fixture.safetensors: small U-Nets
(tests/torch/nn_ref.py UNet, the twin of core/nn/nn_unet.c: circular convs,
stride-2 down, nearest up + conv, concatenated skips with 1x1 residual skips,
mid block, GroupNorm, sinusoidal scalar embedding per block) in PyTorch: their
weights, inputs, outputs, the MSE loss, ALL gradients (parameters and input)
and the losses of 5 AdamW steps. test_nn_torch.c checks the C engine on them.
Usage: /usr/bin/python3 tests/torch/make_unet_fixtures.py  (from the repo root)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_ref import UNet, fixture_tensors, write_safetensors  # noqa: E402

CASES = {
    "unet2d": dict(cfg=dict(dims=2, cin=3, cout=2, widths=[4, 8, 8], blocks=1, mid=1, groups=2,
                            n_scalars=2, emb_dim=6), h=8, w=8, B=3),
    "unet1d": dict(cfg=dict(dims=1, cin=3, cout=2, widths=[4, 8], blocks=2, mid=0, groups=2,
                            n_scalars=1, emb_dim=4), h=1, w=16, B=3),
}
STEPS, LR, WD = 5, 1e-2, 1e-2


def config_string(c, h, w):
    """nn_ckpt_config_string's format for a unet"""
    return (f"dims={c['dims']} h={h} w={w} cin={c['cin']} cout={c['cout']} levels={len(c['widths'])} "
            f"widths={','.join(map(str, c['widths']))} blocks={c['blocks']} mid={c['mid']} "
            f"groups={c['groups']} n_scalars={c['n_scalars']} emb_dim={c['emb_dim']}")


def make(name, case, seed):
    torch.manual_seed(seed)
    c, B = case["cfg"], case["B"]
    net = UNet(**c)
    with torch.no_grad():  # non-trivial norm parameters so their gradients matter
        for pname, p in net.named_parameters():
            if "norm" in pname:
                p.add_(0.3 * torch.randn_like(p))
    shape = (case["h"], case["w"]) if c["dims"] == 2 else (case["w"],)
    x = torch.randn(B, c["cin"], *shape)
    s = torch.rand(B, c["n_scalars"])
    target = torch.randn(B, c["cout"], *shape)
    out = fixture_tensors(net, x, s, target, LR, WD, STEPS)
    meta = {"arch": "unet", "config": config_string(c, case["h"], case["w"]), "B": B,
            "steps": STEPS, "lr": LR, "weight_decay": WD, "torch": torch.__version__}
    path = os.path.join(os.path.dirname(__file__), "..", "data", "nn", f"{name}_fixture.safetensors")
    write_safetensors(path, out, meta)
    n = sum(p.numel() for p in net.parameters())
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes, {n} parameters), "
          f"loss {out['loss'].item():.6f}, adamw losses {out['adamw_losses'][0]:.5f} .. {out['adamw_losses'][-1]:.5f}")


def main():
    torch.set_num_threads(1)
    for i, (name, case) in enumerate(CASES.items()):
        make(name, case, 4321 + i)


if __name__ == "__main__":
    main()

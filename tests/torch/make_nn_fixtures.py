"""Writes tests/data/nn/resnet1d_fixture.safetensors: a small residual conv1d net
(GroupNorm, SiLU, circular conv, sinusoidal τ/t embedding) in PyTorch, its
weights, inputs, outputs, the MSE loss, ALL gradients (parameters and input),
and the losses of 10 AdamW steps. test_nn_torch.c checks the C engine on it.
Usage: /usr/bin/python3 tests/torch/make_nn_fixtures.py  (from the repo root)."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_ref import ResNet1d, fixture_tensors, write_safetensors  # noqa: E402

CFG = dict(cin=3, cout=2, width=8, blocks=2, groups=2, n_scalars=2, emb_dim=6)
B, N, STEPS, LR, WD = 4, 12, 10, 1e-2, 1e-2


def main():
    torch.manual_seed(1234)
    torch.set_num_threads(1)
    net = ResNet1d(**CFG)
    with torch.no_grad():  # non-trivial norm parameters so their gradients matter
        for name, p in net.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(B, CFG["cin"], N)
    s = torch.rand(B, CFG["n_scalars"])
    target = torch.randn(B, CFG["cout"], N)
    out = fixture_tensors(net, x, s, target, LR, WD, STEPS)
    meta = {"config": " ".join(f"{k}={v}" for k, v in CFG.items()), "B": B, "N": N,
            "lr": LR, "weight_decay": WD, "torch": torch.__version__}
    path = os.path.join(os.path.dirname(__file__), "..", "data", "nn", "resnet1d_fixture.safetensors")
    write_safetensors(path, out, meta)
    print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path)} bytes), loss {out['loss'].item():.6f}, "
          f"adamw losses {out['adamw_losses'][0]:.5f} .. {out['adamw_losses'][-1]:.5f}")


if __name__ == "__main__":
    main()

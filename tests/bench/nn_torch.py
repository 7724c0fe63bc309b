"""PyTorch side of `sbida bench nn`: the same network as the C engine
(tests/torch/nn_ref.py): the residual conv1d net, or with --arch unet2d the
2D U-Net of `sbida bench nn --arch unet2d`; float32, same thread count. Prints one JSON
line {"torch_train_step_s", "torch_infer_s", "torch_version", "threads"}.
Times are medians over --reps repetitions after warm-up.
Usage: /usr/bin/python3 tests/bench/nn_torch.py --threads 2 [--reps 10]"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "torch"))
from nn_ref import ResNet1d, UNet  # noqa: E402


def median(v):
    v = sorted(v)
    return v[len(v) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet1d", choices=["resnet1d", "unet2d"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--emb-dim", type=int, default=32)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--cin", type=int, default=11)
    ap.add_argument("--cout", type=int, default=1)
    ap.add_argument("--train-batch", type=int, default=256)
    ap.add_argument("--infer-batch", type=int, default=4096)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.arch == "unet2d":  # cmd_bench.c's ucfg
        net = UNet(dims=2, cin=4, cout=2, widths=[64, 128, 256], blocks=2, mid=2, groups=8,
                   n_scalars=1, emb_dim=32)
        cin, cout, shape = 4, 2, (32, 32)
    else:
        net = ResNet1d(a.cin, a.cout, a.width, a.blocks, a.groups, 1, a.emb_dim)
        cin, cout, shape = a.cin, a.cout, (a.n,)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(a.train_batch, cin, *shape)
    s = torch.rand(a.train_batch, 1)
    y = torch.randn(a.train_batch, cout, *shape)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = torch.mean((net(x, s) - y) ** 2)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    tr = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        step()
        tr.append(time.perf_counter() - t0)
    xi = torch.randn(a.infer_batch, cin, *shape)
    si = torch.rand(a.infer_batch, 1)
    inf = []
    with torch.no_grad():
        net(xi, si)
        for _ in range(max(3, a.reps // 2)):
            t0 = time.perf_counter()
            net(xi, si)
            inf.append(time.perf_counter() - t0)
    print(json.dumps({"torch_train_step_s": median(tr), "torch_infer_s": median(inf),
                      "torch_version": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

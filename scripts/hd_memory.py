"""A CPU proxy for the GPU memory of pix2pixHD's recipes: the peak memory of training steps of this project's step
(G, the multi-scale D, feature matching, Adam) at full size, on the fast path's bf16 autocast where the CPU has it.

    python scripts/hd_memory.py --generator global --ngf 64 --num-d 2 --width 1024 --height 512 [--steps 2]

Prints one JSON line: the process's peak resident memory before and after the steps, the weights and Adam's
moments counted from the parameters, and the seconds a step took. What a GPU would need is about the growth
(weights, gradients, Adam's two moments and the activations the backward pass keeps), plus the CUDA context and
the allocator's slack, which a CPU run cannot show.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--generator", default="global", choices=("global", "local"))
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--num-d", type=int, default=2)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--no-fast", action="store_true")
    args = p.parse_args()

    from pix2pix.config import RunConfig, resolve
    from pix2pix.networks import count_params
    from pix2pix.speed import Precision, configure, fast_path
    from pix2pix.training.setup import build_networks
    from pix2pix.training.step import train_step

    cfg = RunConfig()
    cfg.generator.arch, cfg.generator.ngf, cfg.generator.in_channels = args.generator, args.ngf, args.in_channels
    cfg.discriminator.num_d = args.num_d
    cfg.data.preprocess, cfg.data.load_size, cfg.data.crop_size = "scale_width", args.width, args.width
    resolve(cfg)
    device = torch.device("cpu")
    speed = fast_path(device, not args.no_fast)
    configure(device, speed)
    before = peak_gib()
    nets = build_networks(cfg, device, speed)
    params = count_params(nets.G) + count_params(nets.D)
    x = torch.rand(1, args.in_channels, args.height, args.width) * 2 - 1
    y = torch.rand(1, 3, args.height, args.width) * 2 - 1
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        train_step(x, y, nets, cfg.train.loss, Precision(device, speed))
        seconds.append(time.perf_counter() - start)
    print(json.dumps(dict(generator=args.generator, ngf=args.ngf, num_d=args.num_d, size=f"{args.width}x{args.height}",
                          path=speed.name, params=params, weights_grads_adam_fp32_gib=round(params * 4 * 4 / 2**30, 2),
                          peak_before_gib=round(before, 2), peak_gib=round(peak_gib(), 2),
                          growth_gib=round(peak_gib() - before, 2), step_seconds=[round(s, 1) for s in seconds],
                          threads=torch.get_num_threads())))


if __name__ == "__main__":
    main()

"""The engines' accuracy against fp32 on real inputs: each engine present translates the same label maps in eval
mode, and each output is compared with PyTorch fp32 eager (``--no-fast``) in 8-bit levels.

    python scripts/engine_contract.py --checkpoint RUN --data DIR [--direction BtoA] [--count 24]

DIR holds aligned A|B images (a split folder); the source half of each is translated at its trained size. Prints,
per engine, the lowest and mean PSNR over the images and the largest difference in levels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from pix2pix.checkpoints import load_checkpoint
from pix2pix.inference.engines import Compiled, compiler_available
from pix2pix.inference.translate import Translator
from pix2pix.speed import cpu_has_bf16


def levels(y: torch.Tensor) -> np.ndarray:
    return np.round((y.clamp(-1, 1).numpy().astype(np.float64) + 1) * 127.5)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--direction", default="BtoA")
    p.add_argument("--count", type=int, default=24)
    args = p.parse_args()
    ckpt = load_checkpoint(Path(args.checkpoint))
    exact = Translator(ckpt.build_generator(), ckpt.generator, eval=True, device="cpu", fast=False, meta=ckpt.meta,
                       scales=ckpt.scales)
    files = sorted(Path(args.data).glob("*.*"))[:args.count]
    x = torch.stack([_source(exact, f, args.direction) for f in files])
    reference = exact.translate_tensor(x)
    engines = [("onnxruntime", "fp32")]
    if cpu_has_bf16():  # the compiled engine runs only here (its fp32 compile is measured for the record)
        engines.append(("torch", "bf16"))
        if compiler_available():
            engines += [("compiled", "fp32"), ("compiled", "bf16")]
    print(f"{len(files)} images of {args.data} at {tuple(x.shape[2:])}, eval mode, against PyTorch fp32 eager")
    for engine, precision in engines:
        t = Translator(ckpt.build_generator(), ckpt.generator, eval=True, device="cpu", engine=engine,
                       fast=precision == "bf16")
        if engine == "compiled":
            t.compiled = Compiled(t.G, bf16=precision == "bf16")
        y = torch.cat([t.translate_tensor(x[i:i + 1]) for i in range(len(x))])
        diff = levels(y) - levels(reference)
        mse = (diff ** 2).reshape(len(x), -1).mean(1)
        psnr = 10 * np.log10(255 ** 2 / np.maximum(mse, 1e-12))
        within = float((np.abs(diff) <= 1).mean())
        print(f"{engine:12} {precision}: PSNR lowest {psnr.min():.1f} dB, mean {psnr.mean():.1f} dB; largest "
              f"difference {np.abs(diff).max():.0f} levels; {within:.1%} of values within 1 level")


def _source(translator: Translator, path: Path, direction: str) -> torch.Tensor:
    from pix2pix.data.rasters import to_tensor

    return to_tensor(translator.read_input(path, direction), translator.scales.input)


if __name__ == "__main__":
    main()

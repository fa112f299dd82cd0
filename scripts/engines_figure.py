"""The README's engines figure: milliseconds a 256x256 image on each inference engine, against the reference's
fp32 eager, over several `pix2pix bench` runs (each a dot), with each run's ratio.

    python scripts/engines_figure.py --out docs/engines.png [--runs 4] [--data docs/engines.jsonl]

Each run is a separate `pix2pix bench --json` process (default configuration: unet_256 at 256x256, batch 1,
the paper's test mode); their JSON lines are kept in --data, and a --data file that exists is plotted without
running the bench again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

NAMES = {"baseline": "reference fp32 eager", "torch": "PyTorch bf16", "onnxruntime": "ONNX Runtime fp32",
         "compiled": "compiled bf16"}


def cpu_name() -> str:
    """This machine's CPU as lscpu names it, with its bf16 hardware (the bench's figures depend on it)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 "this CPU")
    bf16 = [name for flag, name in ((" amx_bf16", "AMX"), (" avx512_bf16", "AVX512-BF16")) if flag in info]
    return f"{model} ({', '.join(bf16) if bf16 else 'no bf16'})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--data", help="JSON lines of bench runs (made here when the file does not exist)")
    args = p.parse_args()
    data = Path(args.data) if args.data else None
    if data and data.exists():
        runs = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    else:
        runs = []
        for _ in range(args.runs):
            done = subprocess.run([sys.executable, "-m", "pix2pix", "bench", "--json"], check=True,
                                  capture_output=True, text=True)
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if data:
            data.write_text("".join(json.dumps(r) + "\n" for r in runs))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ["baseline"] + [e for e in ("torch", "onnxruntime", "compiled") if e in runs[0]["engines"]]
    fig, ax = plt.subplots(figsize=(7.5, 2.9), dpi=120)
    for y, name in enumerate(rows):
        ms = [1000 / (r["baseline_infer_img_per_s"] if name == "baseline" else r["engines"][name]) for r in runs]
        ax.scatter(ms, [y] * len(ms), color="#555" if name == "baseline" else "#1f6fb2", zorder=3)
        ax.barh(y, sorted(ms)[len(ms) // 2], color="#ddd" if name == "baseline" else "#cfe0f0", zorder=2)
        if name != "baseline":
            ratios = sorted(r["engines"][name] / r["baseline_infer_img_per_s"] for r in runs)
            ax.text(max(ms) + 2, y, f"{ratios[0]:.2f}x to {ratios[-1]:.2f}x the reference", va="center", fontsize=9)
    ax.set_yticks(range(len(rows)), [NAMES[n] for n in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms per 256x256 image (unet_256, batch 1, paper's test mode; a dot per run)")
    ax.grid(axis="x", alpha=0.3, zorder=0)
    ax.set_xlim(0, max(1000 / r["baseline_infer_img_per_s"] for r in runs) * 1.25)
    ax.set_title(f"pix2pix bench, {len(runs)} runs\n{cpu_name()}, {'; '.join(runs[0].get('notes', []))}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"{args.out}: {len(runs)} runs")


if __name__ == "__main__":
    main()

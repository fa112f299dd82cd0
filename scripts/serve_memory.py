"""Peak memory of one translation on a serving backend, against the server's estimate (ServedModel.cost_bytes).

    python scripts/serve_memory.py RUN_OR_ONNX [torch|onnx|auto] [H W ...]

Each size runs in a process of its own, so that one peak does not hide the next (VmHWM, reset per run).
"""

from __future__ import annotations

import subprocess
import sys

CHILD = r"""
import sys
import numpy as np
from pix2pix.app.models import load_served
source, backend, h, w = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
m = load_served(source, backend=backend)
x = np.random.default_rng(0).uniform(-1, 1, (1, m.config.in_channels, h, w)).astype(np.float32)
m.backend(x[:, :, :64, :64], False, None)  # warm: the weights and the engine's own start-up are not the request's
hwm = lambda: int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")
base = hwm()
m.backend(x, False, None)
print(f"{m.backend.name:6} {h:>6}x{w:<6} measured {(hwm() - base) / 2**20:8.0f} MiB   "
      f"estimate {m.cost_bytes(h, w) / 2**20:8.0f} MiB")
"""


def main() -> None:
    source = sys.argv[1]
    backend = sys.argv[2] if len(sys.argv) > 2 else "auto"
    sizes = [int(v) for v in sys.argv[3:]] or [256, 256, 512, 512, 1024, 1024, 128, 4096]
    for h, w in zip(sizes[::2], sizes[1::2]):
        subprocess.run([sys.executable, "-c", CHILD, source, backend, str(h), str(w)], check=True)


if __name__ == "__main__":
    main()

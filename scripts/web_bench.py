"""The exported site's figures: for each weights (fp32, fp16, int8) its size, PSNR against fp32 on the val
inputs, ONNX Runtime's time here, and the time per image in Chromium (wasm, 1 thread and 2), measured by the page
itself on its first val sample; optionally a screenshot of the page.

    python scripts/web_bench.py --checkpoint runs/demo --runtime .cache/onnxruntime-web-1.31.1.tgz \
        [--weights int8 ...] [--runs 10] [--screenshot docs/site.png] [--json out.jsonl]

Each site is served by a static server on 127.0.0.1 that sends the COOP/COEP headers of its _headers file.
The page's own timer wraps session.run alone (not the canvas work); the median of --runs re-samples is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import chromium, new_output  # noqa: E402
from test_web import serve_folder  # noqa: E402

from pix2pix.app.site import export_site  # noqa: E402
from pix2pix.speed import cpu_name  # noqa: E402


def in_browser_ms(browser, url: str, threads: int, runs: int) -> float:
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    page.goto(f"{url}?threads={threads}&ep=wasm")
    previous = new_output(page, "")
    times = []
    for _ in range(runs):
        page.click("#resample")
        previous = new_output(page, previous)
        times.append(page.evaluate("state.lastMs"))
    page.close()
    times.sort()
    return times[len(times) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--runtime", required=True, help="onnxruntime-web's tarball (make runtime) or folder")
    ap.add_argument("--weights", nargs="+", default=["fp32", "fp16", "int8"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--screenshot", help="a PNG of the default site's page")
    ap.add_argument("--json", help="append each row as a JSON line")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        for weights in args.weights:
            site = Path(tmp) / weights
            entry = export_site(Path(args.checkpoint), site, weights=weights, runtime=Path(args.runtime),
                                progress=False)
            server, url = serve_folder(site, isolated=True)
            try:
                web = entry["web"]
                row = {"checkpoint": args.checkpoint, "generator": entry["generator"], "weights": weights,
                       "mib": round(web["bytes"] / 2**20, 2), "psnr_db": web["psnr_db"], "on_val": web["on_val"],
                       "ort_python_ms": web["ms_per_image"], "machine": cpu_name()}
                for threads in (1, 2):
                    row[f"browser_ms_{threads}_thread"] = round(in_browser_ms(browser, url, threads, args.runs), 1)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.screenshot and weights == args.weights[-1]:
                    page = browser.new_page(viewport={"width": 1000, "height": 620})
                    page.goto(url)
                    first = new_output(page, "")
                    page.click("#resample")  # a second run: the status shows its time, not the set-up's
                    new_output(page, first)
                    page.screenshot(path=args.screenshot)
                    page.close()
            finally:
                server.shutdown()
    if args.json:
        with open(args.json, "a") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A bounded load test of a running ``pix2pix serve``: N translations of one image at a fixed concurrency.

    python -m pix2pix.app.loadtest --url http://127.0.0.1:7860 --image labels.png -n 200 -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int
    ok: int
    seconds: float
    latencies: list[float]
    failures: list[str] = field(default_factory=list)  # what went wrong with the others, one line each

    def summary(self) -> str:
        q = statistics.quantiles(self.latencies, n=20) if len(self.latencies) > 1 else [0.0] * 19
        failed = f"; failed: {self.failures[0]} (and {len(self.failures) - 1} more)" if self.failures else ""
        return (f"{self.requests} requests, {self.ok} answered 200: {self.requests / self.seconds:.1f} requests/s, "
                f"p50 {statistics.median(self.latencies or [0.0]) * 1000:.0f} ms, p95 {q[18] * 1000:.0f} ms{failed}")


async def run_load(url: str, body: bytes, n: int = 200, concurrency: int = 16, check=None) -> LoadResult:
    """POST ``body`` to URL/api/translate ``n`` times, ``concurrency`` at a time; ``check(response)`` may
    judge each answer (default: status 200)."""
    import httpx

    latencies, failures, sem, ok = [], [], asyncio.Semaphore(concurrency), 0
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def one():
            nonlocal ok
            async with sem:
                t = time.perf_counter()
                try:
                    r = await client.post("/api/translate", content=body, headers={"content-type": "image/png"})
                except httpx.HTTPError as e:  # counted, not raised: the other requests still report
                    failures.append(f"{type(e).__name__}: {e}")
                    return
                latencies.append(time.perf_counter() - t)
                good = r.status_code == 200 and (check is None or check(r))
                ok += good
                if not good:
                    failures.append(f"HTTP {r.status_code}: {r.text[:100]}")

        start = time.perf_counter()
        await asyncio.gather(*[one() for _ in range(n)])
    return LoadResult(n, ok, time.perf_counter() - start, latencies, failures)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", default="http://127.0.0.1:7860")
    p.add_argument("--image", required=True, help="a PNG to translate")
    p.add_argument("-n", type=int, default=200)
    p.add_argument("-c", "--concurrency", type=int, default=16)
    args = p.parse_args()
    with open(args.image, "rb") as f:
        body = f.read()
    print(asyncio.run(run_load(args.url, body, args.n, args.concurrency)).summary())


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The GPU check, in under 7 minutes on one H100/H200:
#   0. the CUDA tests (pytest -m gpu): the fast path trains, resumes and translates; the AMP policy chosen
#      for this GPU's compute capability is printed;
#   1. pix2pix bench at batch 1 (also with torch.compile, and with CUDA graphs) and 16, inference at batch
#      64: the fast path against the baseline (the reference's step: torch's default Adam and settings);
#   2. WGAN-GP under torch.compile (its penalty runs through the eager D) and a --no-fast resume of it;
#   3. a short real training run on the CMP facades (the facades preset): the fast path for $MINUTES
#      minutes, the baseline for as many steps; images/s of each and val L1 of both (fp32 inference).
# Usage: scripts/gpu_check.sh [FACADES_DIR]  (default ../shared/data/facades: 400 aligned pairs, flat or train/)
# Needs a CUDA build of torch and this package importable by $PYTHON (default python3; PIX2PIX overrides
# the command).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIX2PIX=${PIX2PIX:-$PYTHON -m pix2pix}
OUT=${OUT:-runs/gpu-check}
MINUTES=${MINUTES:-0.75}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu MINUTES=0.2 BENCH_STEPS=2 smoke-tests the script without a GPU
BENCH_STEPS=${BENCH_STEPS:-50}
SRC=${1:-../shared/data/facades}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PYTHON -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"

$PYTHON -c "import torch; from pix2pix.speed import fast_path; d = torch.device('$DEVICE'); \
print('capability', torch.cuda.get_device_capability(d) if d.type == 'cuda' else None, '->', fast_path(d).name)"
if [ "$DEVICE" = cuda ]; then
  echo "== the CUDA tests"
  $PYTHON -m pytest -q -m gpu tests 2>&1 | tail -3 || echo "the CUDA tests failed (see above); going on"
fi

echo "== bench, batch 1"
$PIX2PIX bench --device "$DEVICE" --batch-size 1 --infer-batch-size 64 --steps "$BENCH_STEPS" | tee "$OUT/bench-b1.txt"
for mode in default reduce-overhead; do
  echo "== bench, batch 1, with torch.compile (mode $mode)"
  PIX2PIX_COMPILE_MODE=$mode $PIX2PIX bench --device "$DEVICE" --batch-size 1 --infer-batch-size 64 \
    --steps "$BENCH_STEPS" | tee "$OUT/bench-b1-compile-$mode.txt" || echo "compile mode $mode failed (see above)"
done
echo "== bench, batch 16"
$PIX2PIX bench --device "$DEVICE" --batch-size 16 --infer-batch-size 64 --steps "$BENCH_STEPS" | tee "$OUT/bench-b16.txt"

DATA="$OUT/facades"
if [ ! -d "$DATA/train" ]; then
  rm -rf "$DATA" && mkdir -p "$DATA"
  find "$SRC" -maxdepth 2 -name '*.jpg' -exec cp {} "$DATA/" \;
  $PIX2PIX datasets split "$DATA" --val 0.1 --test 0 --seed 0
fi

echo "== WGAN-GP under torch.compile, then resumed with --no-fast"
rm -rf "$OUT/runs-wgangp"
PIX2PIX_COMPILE_MODE=default $PIX2PIX train --data "$DATA" --gan-loss wgangp --device "$DEVICE" \
  --runs "$OUT/runs-wgangp" --name w --max-steps 30 --no-progress | grep -E '^(done|stopped)' || echo "wgangp + compile failed"
$PIX2PIX train --resume "$OUT/runs-wgangp/w" --max-steps 40 --no-fast --device "$DEVICE" --no-progress \
  | grep -E '^(done|stopped)' || echo "wgangp resume failed"

echo "== training on the facades, $MINUTES min each"
# The fast path for $MINUTES minutes, then the baseline for the same number of steps: equal-step val L1.
rm -rf "$OUT/runs"
$PIX2PIX train --data "$DATA" --preset facades --device "$DEVICE" --runs "$OUT/runs" --name fast \
  --minutes "$MINUTES" --no-progress | grep -E '^(done|stopped)' | sed 's/^/fast: /'
STEPS=$($PYTHON -c "import csv,sys; print(list(csv.DictReader(open(sys.argv[1])))[-1]['step'])" "$OUT/runs/fast/losses.csv")
$PIX2PIX train --data "$DATA" --preset facades --device "$DEVICE" --runs "$OUT/runs" --name plain \
  --max-steps "$STEPS" --no-fast --preload no --workers 4 --no-progress | grep -E '^(done|stopped)' | sed 's/^/plain: /'
for mode in fast plain; do
  $PIX2PIX eval --run "$OUT/runs/$mode" --split val --no-fast --device "$DEVICE" --json > "$OUT/$mode.json"
done
$PYTHON - "$OUT" <<'PY'
import csv, json, sys
out = sys.argv[1]
for mode in ("fast", "plain"):
    rows = list(csv.DictReader(open(f"{out}/runs/{mode}/losses.csv")))
    rate, step = float(rows[-1]["images_per_s"]), int(rows[-1]["step"])
    l1 = json.load(open(f"{out}/{mode}.json"))["l1"]
    full = 400 * 200 / rate / 60
    print(f"{mode}: {step} steps, {rate:.1f} images/s with data loading -> the full facades recipe "
          f"(400 x 200 epochs, batch 1) in {full:.1f} min; val L1 {l1:.4f}")
PY

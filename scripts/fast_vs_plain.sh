#!/usr/bin/env bash
# Quality must not pay for speed: train the same data, seed and number of steps on the fast path and on the
# plain fp32 eager path, score both val splits the same way (fp32 inference), print each val L1 and the ratio.
#   scripts/fast_vs_plain.sh DATA STEPS [pix2pix train flags...]
# e.g. the demo's recipe on the procedural facades:
#   scripts/fast_vs_plain.sh datasets/facades-synth 2000 --direction BtoA --generator unet_128 --ngf 32 \
#       --ndf 32 --load-size 143 --crop-size 128
set -euo pipefail
DATA=${1:?usage: scripts/fast_vs_plain.sh DATA STEPS [train flags...]}
STEPS=${2:?usage: scripts/fast_vs_plain.sh DATA STEPS [train flags...]}
shift 2
PIX2PIX=${PIX2PIX:-pix2pix}
OUT=${OUT:-runs/fast-vs-plain}
rm -rf "$OUT"
for mode in fast plain; do
  flags=()
  [ "$mode" = plain ] && flags=(--no-fast)
  SECONDS=0
  $PIX2PIX train --data "$DATA" --runs "$OUT" --name "$mode" --max-steps "$STEPS" --no-progress "${flags[@]}" "$@" \
    | grep -E '^(done|stopped)'
  echo "$mode: ${SECONDS} s wall (training and start-up)"
  $PIX2PIX eval --run "$OUT/$mode" --split val --json --no-fast > "$OUT/$mode.json"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
fast, plain = (json.load(open(f"{out}/{m}.json"))["l1"] for m in ("fast", "plain"))
print(f"val L1: fast path {fast:.4f}, fp32 eager {plain:.4f}, ratio {fast / plain:.3f} "
      f"({'within' if abs(fast / plain - 1) <= 0.02 else 'NOT within'} 2%)")
PY

#!/usr/bin/env bash
# Stage 7 (photo-level rebalancing) against stage 6, at equal decoding temperatures.
# Needs the runs of training/configs/experiments/landscape_stage7_{photobal,photobal05,control}.toml and
# data/landscape; writes val/, examples/ and by_rarity.md under results/training/stage7/.
#   bash training/experiments/stage7.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
out=results/training/stage7
tmp=runs/stage7_compare
mkdir -p "$tmp"
declare -A ckpt=(
  [stage6]=runs/landscape_stage6_lam07/final.pt
  [stage7_control]=runs/landscape_stage7_control/final.pt
  [stage7_pb0.5]=runs/landscape_stage7_photobal05/final.pt
  [stage7_pb1]=runs/landscape_stage7_photobal/final.pt
)
models=()
for name in stage6 stage7_control stage7_pb0.5 stage7_pb1; do
  for T in 0.5 1.0; do
    python -m training export --ckpt "${ckpt[$name]}" --out "$tmp/${name}_T$T.pt" \
      --temperature "$T" --why "stage 7 comparison at equal T"
    models+=("$tmp/${name}_T$T.pt")
  done
done
python -m training evaluate --data data/landscape --split val --models "${models[@]}" --out "$out/val" --grid 0
python -m training.experiments.stage7_by_rarity --data data/landscape --split val \
  --per-photo "$out/val/per_photo.csv" > "$out/by_rarity.md"
# the demo's example photos, at full size (none of them is in the training data)
python -m colorizer -q evaluate --model gray "$tmp"/*_T1.0.pt --images examples --size 0 \
  --grid 7 --out "$out/examples"
# the grid as JPEG: a 5 MB PNG of an experiment that did not ship is not worth the history
python -c "from PIL import Image; Image.open('$out/examples/grid.png').save('$out/examples/grid.jpg', quality=85)"
rm "$out/examples/grid.png"

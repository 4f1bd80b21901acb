#!/usr/bin/env bash
# The factor studies of docs/results.md, as run on a 2-core CPU (no GPU available), at the
# protocol sizes of the Fashion-MNIST study (PerceptNet: 10 epochs on 4,000 training images;
# VGG16: 8 epochs on 3,000), 5 paired seeds per cell:
#   1. BatchNorm's momentum: bn and bn_v2 × momentum 0.9 / 0.99, for both thesis architectures;
#   2. PerceptNet-GDN like with like: gdn and gdn_v2 × GDN kernel 1 / 3 (the reuse claim within
#      each kernel, and the kernel change the thesis made as its own contrast).
# STUDY_OUT: where the studies go (default studies/); PARALLEL: runs at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${NORMSCOPE:-.venv/bin/normscope}
out=${STUDY_OUT:-studies}
par=${PARALLEL:-2}
export OMP_NUM_THREADS=1
# (re-running writes the comparisons again with this checkout's compare)
time $ns study examples/perceptnet.yml --variants bn,bn_v2 --data fashion-mnist --seeds 5 --epochs 10 \
  --subset 4000 --factor norm_options.bn.momentum=0.9,0.99 --parallel "$par" --out "$out"
time $ns study examples/perceptnet.yml --variants gdn,gdn_v2 --data fashion-mnist --seeds 5 --epochs 10 \
  --subset 4000 --factor norm_options.gdn.kernel=1,3 --parallel "$par" --out "$out"
time $ns study examples/vgg16.yml --variants bn,bn_v2 --data fashion-mnist --seeds 5 --epochs 8 \
  --subset 3000 --factor norm_options.bn.momentum=0.9,0.99 --parallel "$par" --out "$out"
# the committed outputs of docs/results.md: the comparisons and each run's small files (no checkpoints)
for study in perceptnet-by-momentum perceptnet-by-kernel vgg16-by-momentum; do
  src="$out/$study-fashion-mnist"
  dst="docs/results/$study"
  mkdir -p "$dst/runs"
  for f in table.md paired.md factors.md reliance.md comparison.json study.json; do cp "$src/$f" "$dst/$f"; done
  for run in "$src"/runs/*/; do
    name=$(basename "$run")
    mkdir -p "$dst/runs/$name"
    for f in results.json metrics.csv config.json attribution.json; do
      if [ -f "$run/$f" ]; then cp "$run/$f" "$dst/runs/$name/$f"; fi
    done
  done
done

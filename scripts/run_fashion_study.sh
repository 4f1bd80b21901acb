#!/usr/bin/env bash
# The paired Fashion-MNIST study of docs/results.md, as run on a 2-core CPU (no GPU available):
# all seven variants × 5 seeds of both architectures on a stratified training subset, plus
# BatchNorm with a faster running average for VGG16. Seed s starts every variant of a family
# from the same weights in the layers they share, and feeds the images in the same order.
# STUDY_OUT: where the studies go (default studies/); PARALLEL: runs at a time (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ns=${NORMSCOPE:-.venv/bin/normscope}
out=${STUDY_OUT:-studies}
par=${PARALLEL:-2}
time $ns study examples/perceptnet.yml --data fashion-mnist --seeds 5 --epochs 10 --subset 4000 --parallel "$par" --out "$out"
time $ns study examples/vgg16.yml --data fashion-mnist --seeds 5 --epochs 8 --subset 3000 --parallel "$par" --out "$out"
# supplement: BatchNorm with a faster running average (with Keras' default momentum 0.99 the
# running statistics lag behind the weights in a few hundred steps)
time $ns study examples/vgg16_bn_momentum.yml --variants bn,bn_v2 --data fashion-mnist --seeds 5 --epochs 8 \
  --subset 3000 --parallel "$par" --out "$out"
$ns compare "$out/perceptnet-fashion-mnist" "$out/vgg16-fashion-mnist" "$out/vgg16_bnm09-fashion-mnist" \
  --out "$out/fashion-mnist"
# the committed outputs of docs/results.md
mkdir -p docs/results
for f in table.md table.tex table.csv paired.md paired.tex reliance.md comparison.json chart.png; do
  cp "$out/fashion-mnist/$f" "docs/results/fashion_study_$f"
done

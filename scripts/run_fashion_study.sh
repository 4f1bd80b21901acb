#!/usr/bin/env bash
# The Fashion-MNIST study of docs/results.md, as run on a 2-core CPU (no GPU available):
# all seven variants × 3 seeds of both architectures, on a stratified training subset.
set -euo pipefail
cd "$(dirname "$0")/.."
ns=.venv/bin/normscope
out=${STUDY_OUT:-studies}
time $ns study examples/perceptnet.yml --data fashion-mnist --seeds 3 --epochs 10 --subset 4000 --parallel 2 --out "$out"
time $ns study examples/vgg16.yml --data fashion-mnist --seeds 3 --epochs 8 --subset 3000 --parallel 2 --out "$out"
# (compare of all three follows the supplement below)
# supplement: BatchNorm with a faster running average (the default's running statistics lag
# behind in a few hundred steps)
time $ns study examples/vgg16_bn_momentum.yml --variants bn,bn_v2 --data fashion-mnist --seeds 3 --epochs 8 --subset 3000 --parallel 2 --out "$out"
$ns compare "$out/perceptnet-fashion-mnist" "$out/vgg16-fashion-mnist" "$out/vgg16_bnm09-fashion-mnist" --out "$out/fashion-mnist"
# the figure and table of docs/results.md
mkdir -p docs/results
cp "$out/fashion-mnist/chart.png" docs/results/fashion_study_chart.png
cp "$out/fashion-mnist/table.csv" docs/results/fashion_study_table.csv

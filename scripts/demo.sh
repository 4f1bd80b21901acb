#!/usr/bin/env bash
# The main job: set up, then run the whole pipeline on the data this machine has
# (Fashion-MNIST from Debian): summary, draw, a short study, compare, attribute, report.
# A few minutes on a 2-core CPU. Output under ./demo (or $DEMO_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ns=.venv/bin/normscope
out=${DEMO_OUT:-demo}
mkdir -p "$out"

echo; echo "== 1. summary: the thesis' VGG16 with InstanceNorm and reuse"
$ns summary examples/vgg16_in_v2.yml

echo; echo "== 2. the normalization variants of PerceptNet"
$ns variants examples/perceptnet.yml

echo; echo "== 3. draw it (LaTeX/TikZ -> PDF and PNG)"
$ns draw examples/vgg16_in_v2.yml -o "$out"

echo; echo "== 4. a short study on Fashion-MNIST: PerceptNet with InstanceNorm, without and with reuse"
$ns study examples/perceptnet.yml --data fashion-mnist --variants in,in_v2 --seeds 2 \
    --epochs 3 --subset 5000 --test-subset 2000 --samples 500 --out "$out/studies"

echo; echo "== 5. compare the variants (mean ± std over seeds, plain versus reuse)"
$ns compare "$out/studies/perceptnet-fashion-mnist"

echo; echo "== 6. how much does the reuse model rely on the statistics?"
$ns attribute "$out/studies/perceptnet-fashion-mnist/runs/perceptnet_in_v2-s0" --samples 500

echo; echo "== 7. the study on one page"
$ns report "$out/studies/perceptnet-fashion-mnist" -o "$out/report.html"

echo; echo "done: see $out/ (vgg16_in_v2.pdf/.png, report.html, studies/perceptnet-fashion-mnist/table.md, chart.png)"

#!/usr/bin/env bash
# The main job: set up, then show the pipeline on the data these machines have.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ns=.venv/bin/normscope
out=${DEMO_OUT:-demo}
mkdir -p "$out"
echo "== summary of the thesis' VGG16 with InstanceNorm and reuse"
$ns summary examples/vgg16_in_v2.yml
echo "== the seven variants of PerceptNet"
$ns variants examples/perceptnet.yml

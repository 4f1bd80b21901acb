#!/usr/bin/env bash
# Everything normscope needs on a fresh Debian machine (run as root or with sudo):
# TeX Live + poppler + graphviz for diagrams, Fashion-MNIST, chromium (the report tests), and a virtual environment
# in .venv with normscope and its test tools installed (non-editable).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need_apt=0
for bin in pdflatex pdftoppm dot chromium; do command -v "$bin" >/dev/null || need_apt=1; done
[ -d /usr/share/datasets/fashion-mnist ] || need_apt=1
if [ "$need_apt" = 1 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    texlive-latex-base texlive-pictures texlive-latex-extra poppler-utils graphviz \
    dataset-fashion-mnist chromium >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q ".[test,ray,tensorboard,svm,onnx]"
.venv/bin/normscope --help >/dev/null
echo "normscope set up in .venv (activate with: source .venv/bin/activate)"

#!/usr/bin/env bash
# Installs the Debian Python packages that tools/ uses (model export, reference computations):
#   python3-torch python3-onnx python3-numpy python3-pil python3-sklearn
# Only missing packages are installed; apt-get update runs only when an install fails.
# The tools always run with Debian's interpreter, /usr/bin/python3.
set -euo pipefail

PACKAGES=(python3-torch python3-onnx python3-numpy python3-pil python3-sklearn)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
for package in "${PACKAGES[@]}"; do installed "$package" || missing+=("$package"); done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  install() { DEBIAN_FRONTEND=noninteractive as_root apt-get install -y --no-install-recommends "${missing[@]}"; }
  install || { as_root apt-get update && install; }
fi

/usr/bin/python3 -c 'import torch, onnx, numpy, PIL, sklearn' ||
  { echo "python deps installed but /usr/bin/python3 cannot import torch, onnx, numpy, PIL, sklearn" >&2; exit 1; }
echo "python deps present: ${PACKAGES[*]}"

#!/usr/bin/env bash
# Download, here, the wheels the GPU check needs beyond the GPU machine's image, into
# gpu_check/wheels (git-ignored; about 3 MiB, far under the 64 MiB a device call may carry).
#
# The image has PyTorch, torchvision, timm, onnx, onnxruntime, onnxscript, numpy, matplotlib,
# opencv (headless), pyyaml and rich, but not mmengine. So: mmengine (pinned in
# requirements/constraints.txt) and those of its dependencies the image lacks, all pure-Python
# (py3-none-any): addict, termcolor, yapf and yapf's platformdirs (tomli only matters below
# Python 3.11). And pytest with its dependencies (iniconfig, pluggy, packaging, pygments;
# exceptiongroup and tomli only below 3.11), which run the CUDA tests (tests/gpu): a bare image
# may lack them. The driver installs only the wheels whose package is missing there. Versions:
# the constraints' pin where there is one, else the versions the tests run with here (this venv's).
#
#   bash tools/prepare_gpu_check.sh [PYTHON]      # default: $PYTHON, else python3
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-${PYTHON:-python3}}
dest=gpu_check/wheels
pin() {  # pin NAME: the constraints' version, else the one installed in $py
    local v
    v=$(grep -i "^$1==" requirements/constraints.txt | head -1 | cut -d= -f3 || true)
    [ -n "$v" ] || v=$("$py" -c "import importlib.metadata as m; print(m.version('$1'))")
    echo "$1==$v"
}
specs=()
for name in mmengine addict termcolor yapf platformdirs pytest iniconfig pluggy packaging pygments; do specs+=("$(pin "$name")"); done
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
# Pure-Python wheels only (--only-binary + --platform any): nothing compiled can sneak in, and the
# same files install on the GPU machine's Python 3.12 as on this one.
"$py" -m pip download --quiet --no-deps --only-binary=:all: --implementation py --platform any \
    --python-version 3.12 -d "$dest.tmp" "${specs[@]}"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "wheels for the GPU check in $dest ($(du -sh "$dest" | cut -f1)):"
ls -1 "$dest"

#!/usr/bin/env bash
# One idempotent set-up step for regnet-backbone: a cached virtual environment with torch, mmcv
# (with compiled ops), mmengine, mmdet, mmsegmentation and the test dependencies, and the
# Fashion-MNIST files of `make study` (Debian's dataset-fashion-mnist, through apt when missing).
#
#   tools/setup_env.sh            # prints the environment's python on its last line
#   tools/setup_env.sh oldest     # the oldest supported stack (requirements/constraints-oldest.txt)
#
# Stacks: `default` (requirements/constraints.txt: today's torch, mmcv built here) and `oldest`
# (requirements/constraints-oldest.txt: what mmdet 3.3 users run, torch 2.1.2 and Python 3.10).
# Each stack has its own cached venv, shared by every clone on the machine.
#
# Environment variables:
#   REGNET_ENV_DIR    where the venv and the mmcv wheel cache live
#                     (default: ${XDG_CACHE_HOME:-~/.cache}/regnet-backbone)
#   REGNET_PYTHON     use this existing interpreter (e.g. a CUDA stack) instead of the cached venv;
#                     an mmcv with working ops already installed there is kept as it is.
#   PYTHON            the interpreter that creates the venv (default: the stack's python, below)
set -euo pipefail
# Everything but the final interpreter path goes to stderr, so `py=$(tools/setup_env.sh)` works.
exec 3>&1 1>&2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
req="$here/requirements"
stack="${1:-${REGNET_STACK:-default}}"
case "$stack" in
    default) pins="$req/constraints.txt"; stack_python=python3.11 ;;
    oldest) pins="$req/constraints-oldest.txt"; stack_python=python3.10 ;;
    *) printf '[setup] ERROR: unknown stack %s; use default or oldest.\n' "$stack" >&2; exit 1 ;;
esac
torch_version="$(sed -n 's/^torch==//p' "$pins")"
mmcv_version="$(sed -n 's/^mmcv==//p' "$pins")"
env_dir="${REGNET_ENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/regnet-backbone}"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. the interpreter -------------------------------------------------------------------------
if [[ -n "${REGNET_PYTHON:-}" ]]; then
    py="$REGNET_PYTHON"
    [[ -x "$py" ]] || die "REGNET_PYTHON=$py is not an executable interpreter."
else
    base_py="${PYTHON:-}"
    if [[ -z "$base_py" ]]; then
        # The first candidate that runs (a pyenv shim of an inactive version does not).
        for candidate in "$stack_python" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"${stack_python#python}".*/bin/"$stack_python"; do
            if "$candidate" -c 'import venv' >/dev/null 2>&1; then base_py="$candidate"; break; fi
        done
        [[ -n "$base_py" ]] || die "the $stack stack needs $stack_python (install it, e.g. pyenv install ${stack_python#python}, or set PYTHON)."
    fi
    pytag="$("$base_py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    venv="$env_dir/venv-$pytag-torch$torch_version"
    py="$venv/bin/python"
    if [[ ! -x "$py" ]]; then
        log "creating the virtual environment $venv"
        mkdir -p "$env_dir"
        "$base_py" -m venv "$venv.tmp.$$" || die "python -m venv failed (install python3-venv)."
        mv "$venv.tmp.$$" "$venv" 2>/dev/null || rm -rf "$venv.tmp.$$"
    fi
fi
pip=("$py" -m pip --disable-pip-version-check -q)
constraints="$pins"
if [[ -n "${REGNET_PYTHON:-}" ]]; then
    # An existing stack keeps its own torch: pin everything else, never torch/torchvision.
    constraints="$(mktemp)"
    grep -v -E '^(torch|torchvision)==' "$pins" > "$constraints"
fi
pytag="$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"

# --- 2. pinned packages, skipped when the stamp says nothing changed ------------------------------
stamp="$("$py" -c 'import sys; print(sys.prefix)')/.regnet-backbone-stamp"
want="$(cat "$pins" "$req"/{build,runtime,openmmlab,tests}.txt "$0" | sha256sum | cut -c1-16)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    if [[ -z "${REGNET_PYTHON:-}" ]]; then
        log "installing torch==$torch_version (pinned; never upgraded by later steps)"
        "${pip[@]}" install -c "$pins" torch torchvision \
            || die "could not install torch==$torch_version; see the pip output above."
    fi
    log "installing build tools"
    "${pip[@]}" install -c "$constraints" -r "$req/build.txt" \
        || die "could not install the build tools (setuptools<82 is needed for mmcv's setup.py)."
fi

# --- 3. mmcv with compiled ops: keep a working one, else install the cached wheel, else build ---
have_ops() {
    "$py" - <<'PY' 2>/dev/null
import torch
from mmcv.ops import nms, RoIAlign
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.]])
nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
PY
}
if have_ops; then
    log "mmcv with compiled ops is already installed: kept"
else
    torch_installed="$("$py" -c 'import torch; print(torch.__version__.split("+")[0])')"
    cache="$env_dir/wheels/mmcv-$mmcv_version-torch$torch_installed-$pytag"
    wheel="$(ls "$cache"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
    if [[ -z "$wheel" ]]; then
        log "building mmcv $mmcv_version with ops for torch $torch_installed (one time, ~20 min on 2 cores)"
        work="$(mktemp -d)"
        trap 'rm -rf "$work"' EXIT
        "${pip[@]}" download --no-deps --no-binary :all: -d "$work" "mmcv==$mmcv_version" \
            || die "could not download the mmcv $mmcv_version source."
        tar -xzf "$work"/mmcv-*.tar.gz -C "$work"
        src="$(ls -d "$work"/mmcv-*/ | head -n1)"
        # torch >= 2.10's headers require C++20; mmcv's setup.py hard-codes C++17, which older
        # torch builds with as shipped.
        if "$py" -c 'import sys, torch; sys.exit(tuple(map(int, torch.__version__.split(".")[:2])) < (2, 10))'; then
            sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
        fi
        (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$py" -m pip --disable-pip-version-check wheel --no-deps --no-build-isolation -w "$work/dist" .) \
            || die "building mmcv failed; see the compiler output above."
        mkdir -p "$cache"
        built="$(ls "$work"/dist/mmcv-*.whl)"
        cp "$built" "$cache/.partial.whl" && mv "$cache/.partial.whl" "$cache/$(basename "$built")"
        wheel="$cache/$(basename "$built")"
    else
        log "installing the cached mmcv wheel $wheel"
    fi
    "${pip[@]}" install --force-reinstall --no-deps "$wheel" || die "could not install $wheel."
    # Second pass: mmcv's own dependencies (mmengine, opencv-python, numpy, ...), pinned.
    "${pip[@]}" install -c "$constraints" "$wheel" || die "could not install mmcv's dependencies."
    if ! have_ops; then
        "$py" -c 'import mmcv.ops' || true
        die "mmcv.ops does not import after installing $wheel (error above); if the wheel is broken, delete $cache and rerun."
    fi
fi

# --- 4. OpenMMLab, test dependencies and this package -------------------------------------------
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    log "installing mmengine, mmdet, mmsegmentation and the test dependencies"
    "${pip[@]}" install -c "$constraints" -r "$req/runtime.txt" -r "$req/openmmlab.txt" \
        -r "$req/tests.txt" || die "could not install the pinned packages; see the pip output above."
    echo "$want" > "$stamp"
fi
"${pip[@]}" install --no-deps --no-build-isolation -e "$here" >/dev/null \
    || die "could not install regnet_backbone itself (pip install -e $here)."

# --- 5. the real data of `make study`: Debian's dataset-fashion-mnist (optional) ------------------
# Kept when present, else installed with apt; without apt it says so in one line and the set-up
# goes on (only `make study` and tests/test_fashion_mnist.py read these files).
bash "$here/tools/get_fashion_mnist.sh" || true
echo "$py" >&3

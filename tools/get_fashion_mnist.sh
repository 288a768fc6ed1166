#!/usr/bin/env bash
# Fashion-MNIST for `make study`, from Debian's `dataset-fashion-mnist` package (the original idx
# files, 60,000 + 10,000 greyscale 28x28 images, MIT licence). Idempotent: nothing happens when the
# four files are there. Called by tools/setup_env.sh; never needs the internet beyond apt's mirror.
#
#   tools/get_fashion_mnist.sh     # exit 0: the files are there; 1: not installed (one line why)
#
# Environment variables:
#   REGNET_FASHION_MNIST_DIR   where the files are (default /usr/share/datasets/fashion-mnist)
#   APT_GET                    the apt-get to run (default: apt-get on PATH)
set -uo pipefail

dir="${REGNET_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}"
apt="${APT_GET:-apt-get}"
package=dataset-fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
       t10k-labels-idx1-ubyte.gz)
fallback="without it, \`tools/study.py demo --download\` lets mmpretrain download Fashion-MNIST (needs the internet)"

log() { printf '[setup] %s\n' "$*" >&2; }

present() {
    local f
    for f in "${files[@]}"; do
        [[ -s "$dir/$f" ]] || return 1
    done
}

if present; then
    log "Fashion-MNIST: $dir (kept)"
    exit 0
fi
if ! command -v "$apt" >/dev/null 2>&1; then
    log "Fashion-MNIST is not installed and apt-get is unavailable: install Debian's $package by other means; $fallback."
    exit 1
fi
run=("$apt")
if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        run=(sudo -n "$apt")  # never prompts: a password would stall `make`
    else
        log "Fashion-MNIST is not installed and installing $package needs root: run \`apt-get install $package\` as root; $fallback."
        exit 1
    fi
fi
log "installing Fashion-MNIST: ${run[*]} install -y $package (30 MB)"
err="$(mktemp)"
trap 'rm -f "$err"' EXIT
if ! DEBIAN_FRONTEND=noninteractive "${run[@]}" install -y --no-install-recommends "$package" \
        >/dev/null 2>"$err" || ! present; then
    why="$(grep -v -e '^[[:space:]]*$' -e '^W: ' "$err" | tail -n1)"
    log "could not install $package (${why:-the files are still missing from $dir}); try \`sudo apt-get update && sudo apt-get install $package\`; $fallback."
    exit 1
fi
log "Fashion-MNIST: $dir (installed)"

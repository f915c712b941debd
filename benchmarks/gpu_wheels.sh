#!/usr/bin/env bash
# Download, here (a CPU machine that reaches the package registry), the wheels the offline
# GPU machine lacks, for its Python 3.12 on x86-64 Linux, into gpu-wheels/ (gitignored).
#
#   benchmarks/gpu_wheels.sh            # → gpu-wheels/*.whl, prints their total size (< 64 MiB)
#
# Then, on the GPU machine (the device tool: carry ["gpu-wheels"]), one command installs
# them into .gpu-site/ and runs the check:
#
#   bash benchmarks/gpu_offline_check.sh            # = pip install --no-index --no-deps --target .gpu-site …
#                                                   #   && PYTHONPATH=src:.gpu-site benchmarks/gpu_check.sh
#
# That machine already has CUDA torch, lightning, numpy, pandas, pyarrow, scipy, statsmodels
# and tokenizers (with their own dependencies: PyYAML, tqdm, fsspec, jinja2, …). REQUIRED
# are what it lacks for the engine: litgpt and jsonargparse[signatures] (litgpt's CLI
# machinery, imported by litgpt.config). OPTIONAL are the rest of designkit's and litgpt's
# needs (plots, litgpt's psutil/safetensors); gpu_offline_check.sh installs one only if the
# machine cannot import it, so the image's own builds win. Versions are the ones this
# repository is tested with. Every wheel is fetched with --no-deps: the list is complete.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
dest="${1:-$repo/gpu-wheels}"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

REQUIRED=(litgpt==0.5.13 jsonargparse==4.41.0 docstring-parser==0.18.0 typeshed-client==2.15.0)
OPTIONAL=(psutil==7.2.2 safetensors==0.8.0 matplotlib==3.11.2 contourpy==1.3.3 cycler==0.12.1
          fonttools==4.68.0 kiwisolver==1.5.1 pillow==13.0.0 pyparsing==3.3.3)

mkdir -p "$dest"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --dest "$dest" "${REQUIRED[@]}" "${OPTIONAL[@]}"

printf '%s\n' "${OPTIONAL[@]%%==*}" > "$dest/OPTIONAL"
ls -l "$dest"/*.whl | awk '{print $5, $9}'
bytes=$(cat "$dest"/*.whl | wc -c)
echo "$(ls "$dest"/*.whl | wc -l) wheels, $((bytes / 1024 / 1024)) MiB in $dest (the device tool carries at most 64 MiB)"
[ "$bytes" -lt $((64 * 1024 * 1024)) ] || { echo "too large to carry" >&2; exit 1; }

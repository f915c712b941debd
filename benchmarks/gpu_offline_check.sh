#!/usr/bin/env bash
# On the offline GPU machine: install the wheels of benchmarks/gpu_wheels.sh into .gpu-site/
# (no index, no dependency resolution: the folder holds exactly what is missing), put src/
# and .gpu-site/ on PYTHONPATH, and run benchmarks/gpu_check.sh with the given arguments.
#
#   bash benchmarks/gpu_offline_check.sh [gpu_check.sh arguments]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
wheels="${WHEELS:-$repo/gpu-wheels}"
site="${SITE:-$repo/.gpu-site}"
python="${PYTHON:-$(command -v python3)}"
[ -d "$wheels" ] || { echo "no $wheels: run benchmarks/gpu_wheels.sh on a machine with the registry, then carry it" >&2; exit 2; }

# an OPTIONAL wheel is installed only where the machine cannot import its package
wanted=$("$python" - "$wheels" <<'PY'
import importlib.util, pathlib, sys
wheels = pathlib.Path(sys.argv[1])
optional = set((wheels / "OPTIONAL").read_text().split()) if (wheels / "OPTIONAL").is_file() else set()
modules = {"pillow": "PIL", "fonttools": "fontTools", "docstring-parser": "docstring_parser", "typeshed-client": "typeshed_client"}
for wheel in sorted(wheels.glob("*.whl")):
    dist = wheel.name.split("-")[0].lower().replace("_", "-")
    module = modules.get(dist, dist.replace("-", "_"))
    if dist in optional and importlib.util.find_spec(module) is not None:
        continue
    print(wheel)
PY
)
if [ -n "$wanted" ]; then
  # shellcheck disable=SC2086
  "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" $wanted
fi
export PYTHONPATH="$repo/src:$site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHON="$python" PYTHONUNBUFFERED=1
"$python" -c "import litgpt, lightning, torch; print(f'litgpt {litgpt.__version__ if hasattr(litgpt, \"__version__\") else \"?\"}, lightning {lightning.__version__}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}')"
exec bash "$here/gpu_check.sh" "$@"

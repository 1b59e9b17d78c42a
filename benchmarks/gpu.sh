#!/usr/bin/env bash
# The layer and pipeline benchmarks on a GPU machine, in a few minutes.
#
# A GPU machine without a package registry has PyTorch, JAX, NumPy, xarray, scikit-learn and
# matplotlib, but not Keras or our data libraries. So, in two steps:
#
#   benchmarks/gpu.sh wheels   # where pip reaches the registry: the missing wheels into .whl/
#   benchmarks/gpu.sh run      # on the GPU machine, offline: install them and faconvlstm into
#                              # a folder of their own, then run the benchmarks
#
# `run` writes the benchmarks' output and JSON to $OUT (default: benchmarks-gpu/) and keeps
# each benchmark within its time limit, so the whole takes about 5-8 minutes. Settings:
# PYTHON (python3), PY_VERSION of the GPU machine's Python (3.12), WHEELS (.whl), SITE
# (/tmp/faconvlstm-site), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
PY_VERSION=${PY_VERSION:-3.12}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/faconvlstm-site}
OUT=${OUT:-benchmarks-gpu}

# What faconvlstm needs beyond such a machine's own packages (each pinned to what it is
# tested with, so the set installs without a resolver).
MISSING=(
  keras==3.15.1 namex==0.1.0 optree==0.20.0
  dask==2026.8.0 partd==1.4.2 locket==1.0.0 importlib-metadata==10.2.0
  netCDF4==1.7.5.1.post1 cftime==1.6.6.1 h5netcdf==1.8.3
  zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0
  cf_xarray==0.11.3 xeofs==3.0.6 lazy-importer==0.1.0
)

wheels() {
  local platforms=()
  for tag in manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 \
             manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
  done
  mkdir -p "$WHEELS"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$PY_VERSION" "${platforms[@]}" --platform any -d "$WHEELS" "${MISSING[@]}"
  du -sh "$WHEELS"
}

install() {
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-build-isolation --no-cache-dir \
    --upgrade --target "$SITE" .
  export PYTHONPATH="$SITE"
}

# One benchmark, its output teed to $OUT/NAME.txt, stopped after LIMIT seconds.
bench() {
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*"
  timeout "$limit" "$PYTHON" "$@" 2>&1 | tee "$OUT/$name.txt" || echo "== $name stopped (status $?)"
}

run() {
  install
  mkdir -p "$OUT"
  export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi"; } | tee "$OUT/gpu.txt"
  KERAS_BACKEND=torch "$PYTHON" -c "import torch, jax, keras; print('torch', torch.__version__, torch.cuda.is_available(), \
'| jax', jax.__version__, jax.devices(), '| keras', keras.__version__)" | tee -a "$OUT/gpu.txt"
  bench layer_torch 150 benchmarks/layer_speed.py --backend torch --json "$OUT/layer_torch.json"
  bench layer_torch_large 150 benchmarks/layer_speed.py --backend torch --batch 32 \
    --height 128 --width 128 --layers fa,convlstm --json "$OUT/layer_torch_large.json"
  bench layer_jax 120 benchmarks/layer_speed.py --backend jax --repeats 3 --warmup 1 \
    --json "$OUT/layer_jax.json"
  bench pipeline_torch 150 benchmarks/pipeline_speed.py --backend torch
}

case "${1:-}" in
  wheels) wheels ;;
  run) run ;;
  *) echo "usage: benchmarks/gpu.sh wheels|run" >&2; exit 2 ;;
esac

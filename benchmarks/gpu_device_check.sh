#!/usr/bin/env bash
# The GPU checks and figures of the processing engine, as one run on a machine with an
# NVIDIA GPU (the CuPy + numba-cuda image of the workplace's device tool: Python 3.12,
# CuPy, numba-cuda, pyarrow, numpy, pytest, hypothesis already there).
#
# Before the run, on a machine with PyPI, fetch the few packages that image lacks into
# .whl/ (ignored by git) and carry it:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl cryptography cffi pycparser msgspec hyperscan
# Then, from the repository root: bash benchmarks/gpu_device_check.sh  (OUT: results dir)
set -u -o pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/plait-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/plait-site:$PWD
else
    export PYTHONPATH=$PWD
fi
# tests/conftest.py defaults this to 1 (the CPU simulator); 0 puts the kernels on the GPU.
export NUMBA_ENABLE_CUDASIM=0 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
# Every operator, the device chain and calibration against the CPU engine, on the device.
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/gpu tests/gpu_sim 2>&1 | tee "$OUT/gpu-tests.log"
tests_rc=$?
# Loop vs CPU engine vs GPU engine at 1k, 64k and 1M events (GPU figures name the card).
timeout 300 python3 -m plait.cli.main bench process --engine all --json > "$OUT/bench-process.json"
bench_rc=$?
echo "tests rc=$tests_rc bench rc=$bench_rc"
exit $(( tests_rc || bench_rc ))

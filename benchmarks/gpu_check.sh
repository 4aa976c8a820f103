#!/usr/bin/env bash
# The CUDA checks in one short run, for a machine with an NVIDIA GPU and its own CUDA build of
# PyTorch ($PYTHON, default python3, must import torch and see the GPU; nothing is installed here):
#   1. the tests marked `gpu` (bf16 autocast with the KV-cache, compiled training, CUDA training of
#      the VAE and the mixture model) plus the GPT tests that run anywhere;
#   2. benchmarks/gpt_speed.py on CUDA: tokens/s and MFU at L6/H6/C384/T256/B64 with bf16 autocast
#      and torch.compile (target >= 0.35 on an H100/H200), and the KV-cache speed-ups;
#   3. benchmarks/diffusion_mnist.py on CUDA (bf16 autocast in training), with a fresh cache in $OUT
#      so it trains every model it scores (set GENAI_CACHE_DIR to reuse one).
#   4. benchmarks/stylegan_mnist.py on CUDA, in the same cache (it reuses the DCGAN of step 3).
# Logs go to $OUT (or /tmp). Usage, from anywhere:  bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py="${PYTHON:-python3}"
"$py" - <<'EOF' || exit 1
try:
    import torch
except ImportError as exc:
    raise SystemExit(f"gpu_check: this python cannot import torch ({exc}); set PYTHON to one that can")
if not torch.cuda.is_available():
    raise SystemExit("gpu_check: no CUDA device visible to this python's torch")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, bf16={torch.cuda.is_bf16_supported()}")
EOF
status=0
# -o addopts="": the project's pytest options name nbval, which a GPU image need not have.
"$py" -m pytest -o addopts="" -p no:cacheprovider -q -rs \
  tests/test_gpt.py tests/test_train.py tests/test_vae.py tests/test_mixture.py tests/test_diffusion.py tests/test_stylegan.py 2>&1 | tee "$out/gpu_tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
"$py" benchmarks/gpt_speed.py --device cuda 2>&1 | tee "$out/gpt_speed_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
GENAI_CACHE_DIR="${GENAI_CACHE_DIR:-$out/genai_cache}" "$py" benchmarks/diffusion_mnist.py 2>&1 | tee "$out/diffusion_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
GENAI_CACHE_DIR="${GENAI_CACHE_DIR:-$out/genai_cache}" "$py" benchmarks/stylegan_mnist.py 2>&1 | tee "$out/stylegan_cuda.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit "$status"

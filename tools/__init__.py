"""Tools that are neither the product nor a measurement: the GPU acceptance harness
(``python -m tools.gpu_check``, docs/gpu.md) and its DDP step."""

"""The CPU a benchmark ran on: model name and the vector extensions that decide which kernels the frameworks use.

Read from /proc/cpuinfo (Linux); elsewhere only `platform.processor()`.  Imported by the bench scripts, which print
`cpu_line()` beside their figures so numbers from different machines can be told apart.
"""

from __future__ import annotations

import os
import platform

# The extensions that change kernel choice: TensorFlow's pip wheel is compiled for AVX (Eigen's elementwise ops),
# while oneDNN, MKL, XLA and PyTorch's ATen pick AVX2 / FMA / AVX-512 kernels at run time.
VECTOR_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni",
                "avx512_bf16", "amx_tile")


def cpu_info(path="/proc/cpuinfo") -> dict:
    """{"model": str, "cores": int, "flags": [vector extensions present, in VECTOR_FLAGS order]}."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open(path) as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
            os.cpu_count(), "flags": [f for f in VECTOR_FLAGS if f in flags]}


def cpu_line() -> str:
    info = cpu_info()
    return f"CPU: {info['model']}, {info['cores']} cores usable; vector extensions: {' '.join(info['flags']) or '?'}"


if __name__ == "__main__":
    print(cpu_line())

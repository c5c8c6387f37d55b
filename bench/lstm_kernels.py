"""Per-kernel CPU timings behind the MusicVAE step: TensorFlow vs PyTorch on one thread, at the LSTM's shapes.

Why the Keras / PyTorch step ratio (`bench/musicvae_step.py`) depends on the machine: the two frameworks pick
their CPU kernels differently.

    TensorFlow   elementwise ops (tanh, sigmoid, mul, add) are Eigen code compiled into the pip wheel for plain AVX
                 (the wheel must run on any x86-64 with AVX: no AVX2/FMA/AVX-512 in them); MatMul goes to oneDNN
                 (run-time ISA dispatch) or Eigen's contraction; XLA (`jit_compile`) generates code for the host.
    PyTorch      ATen compiles each elementwise kernel for AVX2 and AVX-512 and dispatches at run time; matmul is
                 MKL's sgemm (run-time dispatch, its own code paths per vendor).

Each kernel runs `--iters` times inside one call, each run reading the last one's output (rescaled to stay in
range, the same arithmetic on both sides, so nothing loop-invariant can be hoisted) (a `tf.while_loop` in a `tf.function`; a Python loop for PyTorch,
whose per-op overhead is a few µs) and the median over `--repeats` calls is reported in µs per kernel.  `--isa
avx2` re-runs everything in a child process with every framework capped at AVX2 (ATEN_CPU_CAPABILITY=avx2,
MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2, XLA_FLAGS=--xla_cpu_max_isa=AVX2): an AVX-512 machine then
behaves like an AVX2-only one (e.g. AMD Zen 2/3), without a second machine.

    python bench/lstm_kernels.py [--isa native|avx2|both] [--iters 200] [--repeats 7]

Last line per ISA: `RESULT lstm_kernels_tf_vs_torch_<isa> <geometric mean of torch_us / tf_us>x`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
            "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}
BATCH, UNITS, INPUTS = 32, 512, 512  # one half-batch chain of the bench's decoder: gates [32, 4 * 512]


def _median_us(run, iters, repeats):
    run()  # warm-up (tracing, compilation, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / iters * 1e6)
    return statistics.median(times)


def tf_kernels(iters, repeats):
    import tensorflow as tf

    from musicgen_tf.models.fused_lstm import _gates_backward, _gates_forward

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = tf.random.Generator.from_seed(0)
    gates = rng.normal([BATCH, 4 * UNITS])
    h, c = rng.normal([BATCH, UNITS]), rng.normal([BATCH, UNITS])
    kernel = rng.normal([UNITS, 4 * UNITS]) * 0.05

    def loop(body, x, jit=False):
        @tf.function(jit_compile=jit)
        def run(x):
            return tf.while_loop(lambda i, x: i < iters, lambda i, x: (i + 1, body(x)), (tf.constant(0), x))[1]
        return lambda: tf.nest.map_structure(lambda t: t.numpy(), run(x))

    def fwd(state):  # every step depends on the last one, so no loop-invariant work can be hoisted
        z, c = state
        _, c, gate = _gates_forward(z, z, c)
        return gate * 4.0 - 2.0, c

    def bwd(state):
        z, d = state
        d_z, d = _gates_backward(tf.sigmoid(z), c, c, d, h, d)
        return d_z * 0.5, d * 0.5

    out = {
        "tanh [32,2048]": loop(lambda x: tf.tanh(x) * 2.5, gates),
        "sigmoid [32,2048]": loop(lambda x: tf.sigmoid(x) * 4.0 - 2.0, gates),
        "mul-add [32,2048]": loop(lambda x: x * 0.999 + 0.001, gates),
        "matmul [32,512]x[512,2048]": loop(lambda x: tf.matmul(x, kernel)[:, :UNITS], h),
        "lstm gates fwd (ops)": loop(fwd, (gates, c)),
        "lstm gates fwd (XLA)": loop(fwd, (gates, c), jit=True),
        "lstm gates bwd (ops)": loop(bwd, (gates, h)),
        "lstm gates bwd (XLA)": loop(bwd, (gates, h), jit=True),
    }
    return {name: _median_us(run, iters, repeats) for name, run in out.items()}


def torch_kernels(iters, repeats):
    import torch

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    gates = torch.randn(BATCH, 4 * UNITS, generator=g)
    h, c = torch.randn(BATCH, UNITS, generator=g), torch.randn(BATCH, UNITS, generator=g)
    kernel = torch.randn(UNITS, 4 * UNITS, generator=g) * 0.05

    def gates_forward(state):  # fused_lstm._gates_forward, then the same feedback as the TensorFlow loop
        z, c = state
        i, f, gg, o = (z + z).chunk(4, dim=-1)
        i, f, gg, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(gg), torch.sigmoid(o)
        c = f * c + i * gg
        o * torch.tanh(c)
        return torch.cat([i, f, gg, o], dim=-1) * 4.0 - 2.0, c

    def gates_backward(state):  # fused_lstm._gates_backward
        z, d = state
        i, f, gg, o = torch.sigmoid(z).chunk(4, dim=-1)
        tanh_c = torch.tanh(c)
        d_h = d + h
        d_c = d + d_h * o * (1.0 - torch.square(tanh_c))
        d_z = torch.cat([d_c * gg * i * (1.0 - i), d_c * c * f * (1.0 - f), d_c * i * (1.0 - torch.square(gg)),
                         d_h * tanh_c * o * (1.0 - o)], dim=-1)
        return d_z * 0.5, d_c * f * 0.5

    def loop(body, x):
        def run():
            y = x
            with torch.no_grad():
                for _ in range(iters):
                    y = body(y)
            return y
        return run

    out = {
        "tanh [32,2048]": loop(lambda x: torch.tanh(x) * 2.5, gates),
        "sigmoid [32,2048]": loop(lambda x: torch.sigmoid(x) * 4.0 - 2.0, gates),
        "mul-add [32,2048]": loop(lambda x: x * 0.999 + 0.001, gates),
        "matmul [32,512]x[512,2048]": loop(lambda x: (x @ kernel)[:, :UNITS], h),
        "lstm gates fwd (ops)": loop(gates_forward, (gates, c)),
        "lstm gates bwd (ops)": loop(gates_backward, (gates, h)),
    }
    return {name: _median_us(run, iters, repeats) for name, run in out.items()}


def measure(iters, repeats):
    import torch

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cpuinfo import cpu_line

    return {"cpu": cpu_line(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "tf": tf_kernels(iters, repeats), "torch": torch_kernels(iters, repeats)}


def report(isa, result):
    print(f"\n== ISA {isa}: {result['cpu']}; PyTorch kernels: {result['torch_capability']}; one thread each")
    print(f"  {'kernel':<30} {'TensorFlow µs':>14} {'PyTorch µs':>11} {'torch/tf':>9}")
    ratios = []
    for name, tf_us in result["tf"].items():
        torch_name = name.replace("(XLA)", "(ops)")
        torch_us = result["torch"].get(torch_name)
        ratio = torch_us / tf_us
        if "(XLA)" not in name:
            ratios.append(ratio)
        print(f"  {name:<30} {tf_us:14.1f} {torch_us:11.1f} {ratio:8.2f}x")
    geo = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"RESULT lstm_kernels_tf_vs_torch_{isa} {geo:.2f}x (geometric mean of torch_us / tf_us, without XLA rows)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", choices=("native", "avx2", "both"), default="both")
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        print(json.dumps(measure(args.iters, args.repeats)))
        return
    for isa in ("native", "avx2") if args.isa == "both" else (args.isa,):
        env = {**os.environ, **(AVX2_ENV if isa == "avx2" else {})}
        child = subprocess.run([sys.executable, __file__, "--child", "--iters", str(args.iters), "--repeats",
                                str(args.repeats)], env=env, capture_output=True, text=True, check=True)
        report(isa, json.loads(child.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()

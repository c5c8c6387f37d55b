"""Transformer-XL generation speed: cached memories (`TransformerXL.generate`) vs recomputing the prefix per token.

A mid-size model with random weights (speed does not depend on training): 6 layers, d_model 256, 4 heads,
d_inner 1024, REMI vocabulary, segment 512 and memory 512 (the seed's lengths), batch 1, top-k 5, EOS disabled so
every run generates exactly N tokens.

- cached: one `generate` call (a `tf.while_loop` in a `tf.function`, traced once beforehand), N tokens.
- recompute: every new token runs `logits_full_recompute` semantics on the whole prefix (segments + memory, the
  model's `call` in a `tf.function`).  Its time for N tokens is sum_{n=1..N} t(n); t(n) is timed at a grid of
  prefix lengths and interpolated (running all 1024 steps takes minutes on 2 cores); at N=256 a real token-by-token
  recompute loop is also run to check the estimate.

    python bench/txl_generate.py [--lengths 256 512 1024] [--repeats 3]

Last line: `RESULT cached_vs_recompute_1024 <ratio>x (target >= 10x)`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from musicgen_tf.models.transformer_xl import TransformerXL  # noqa: E402
from musicgen_tf.music.remi import BAR, EOS_ID, PAD_ID, RemiConverter  # noqa: E402


def build_model():
    converter = RemiConverter()
    model = TransformerXL(vocab_size=converter.vocab_size, pad_id=PAD_ID, eos_id=EOS_ID,
                          bar_id=converter.vocab.token_to_id(BAR), num_layers=6, d_model=256, num_heads=4,
                          d_inner=1024, dropout=0.0, segment_len=512, mem_len=512)
    model.build()
    bias = np.zeros(converter.vocab_size, np.float32)
    bias[EOS_ID] = -1e4
    model.output_bias.assign(bias)
    return model


def time_cached(model, length, repeats):
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        out = model.generate(10**6, top_k=5, seed=[r, 0], max_tokens=length)
        times.append(time.perf_counter() - start)
        assert out.shape[1] == length, out.shape
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grid", type=int, default=12, help="prefix lengths timed for the recompute estimate")
    args = parser.parse_args()
    print(f"TF {tf.__version__}, intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}")
    model = build_model()
    params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    print(f"model: 6 layers, d_model 256, 4 heads, d_inner 1024, segment 512, memory 512, {params / 1e6:.1f}M params "
          "(random weights)")

    model.generate(10**6, top_k=5, seed=[0, 0], max_tokens=8)  # trace once
    last_logits = tf.function(lambda ids: model(ids[None], training=False)[0, -1],
                              input_signature=[tf.TensorSpec([None], tf.int32)])
    rng = np.random.default_rng(0)
    ids = rng.integers(2, model.vocab_size, size=max(args.lengths)).astype(np.int32)
    last_logits(ids[:8])

    grid = np.unique(np.linspace(1, max(args.lengths), args.grid).astype(int))
    t_of_n = []
    for n in grid:
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            last_logits(ids[:n]).numpy()
            times.append(time.perf_counter() - start)
        t_of_n.append(statistics.median(times))
    per_step = np.interp(np.arange(1, max(args.lengths) + 1), grid, t_of_n)

    check = min(args.lengths)
    start = time.perf_counter()
    prefix = [int(ids[0])]
    for _ in range(check - 1):
        logits = last_logits(np.asarray(prefix, np.int32)).numpy()
        prefix.append(int(np.argmax(logits)))
    real = time.perf_counter() - start
    print(f"recompute check at {check}: real loop {real:.2f} s, estimate {per_step[:check].sum():.2f} s")

    print(f"{'tokens':>7} {'cached tok/s':>13} {'recompute tok/s':>16} {'ratio':>8}")
    ratio = None
    for length in args.lengths:
        cached = time_cached(model, length, args.repeats)
        recompute = real if length == check else per_step[:length].sum()
        ratio = recompute / cached
        print(f"{length:>7} {length / cached:>13.1f} {length / recompute:>16.1f} {ratio:>7.1f}x")
    print(f"RESULT cached_vs_recompute_{max(args.lengths)} {ratio:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()

"""Transformer-XL train-step time: `musicgen_tf.models.transformer_xl.TransformerXL` (Keras 3 on TF) vs PyTorch.

The PyTorch side is a Transformer-XL written for this bench with the same network and the same step, in one
process on the same CPU cores (each framework with its default threads: all cores):

    tokens int [B, L] (REMI vocabulary) -> embedding * sqrt(D) -> N post-norm blocks of
      relative multi-head attention over [memory (M states of the previous segment, stop-gradient) | segment (S)]:
        score(i, j) = ((q_i + u) k_j + (q_i + v) W_r R_{i-j}) / sqrt(d), causal mask, memory slots that precede the
        piece masked, dropout 0.1 on the attention output; then a ReLU feed-forward D -> d_inner -> D (dropout 0.1)
    -> logits tied to the embedding + bias; loss = summed token NLL / tokens, a backward pass per segment (memories
    are stop-gradient, so the per-segment gradients sum to the piece's), Adam(1e-4) with global clip norm 1.0.

Keras runs the project's model and its real `train_step` (`model.make_train_function()` over a tf.data iterator,
what `fit` runs per step).  Both sides start from the same weights (copied from Keras into PyTorch) and, with
dropout off, their first losses are compared: the bench refuses to time two different networks.

Two sizes, each run for pieces of 2 segments so the second segment attends to a real memory:

    preset   the remi_txl_pop network: 12 layers, d_model 512, 8 heads, d_inner 2048, segment 512, memory 512;
             batch 1 of 1,025 tokens (the preset trains batch 16 of 512-token windows: one step of it takes about
             a minute on 2 cores; per-token cost is the same)
    cpu      4 layers, d_model 256, 4 heads, d_inner 1024, segment 128, memory 128, batch 8 of 257 tokens

Steps are timed in interleaved rounds (torch, keras, torch, ...) so load from other jobs hits both alike; the
reported time is the median step after warm-up.  PyTorch runs twice, at its default threads (all cores) and at one
thread, and the faster of the two is the reference: on a CPU shared with other jobs its OpenMP threads can wait
for each other at every op.

    pip install -e '.[bench]'            # torch==2.13.0 (CPU wheel)
    python bench/txl_train_step.py [--sizes cpu preset] [--rounds 3] [--steps 2] [--warmup 1]

Last line: `RESULT txl_keras_vs_torch_step <torch_ms / keras_ms>x (target >= 1.0x)` for the preset size (the first
size asked for when the preset is not).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

from timing import interleaved_times, with_torch_threads  # noqa: E402  (bench/timing.py, beside this script)

SIZES = {
    "preset": dict(num_layers=12, d_model=512, num_heads=8, d_inner=2048, segment_len=512, mem_len=512, batch=1,
                   length=1025),
    "cpu": dict(num_layers=4, d_model=256, num_heads=4, d_inner=1024, segment_len=128, mem_len=128, batch=8,
                length=257),
}
LEARNING_RATE, CLIP_NORM = 1e-4, 1.0


def random_tokens(vocab, batch, length, seed=0):
    """int64 [batch, length] in [2, vocab) (no PAD, no EOS: every token counts)."""
    return np.random.default_rng(seed).integers(2, vocab, size=(batch, length)).astype(np.int64)


# -- Keras: the project's model ---------------------------------------------------------------------------------------

def keras_model(vocab, size, dropout):
    import keras

    from musicgen_tf.models.transformer_xl import TransformerXL

    keras.utils.set_random_seed(0)
    config = {k: v for k, v in size.items() if k not in ("batch", "length")}
    model = TransformerXL(vocab_size=vocab, pad_id=0, eos_id=1, bar_id=2, dropout=dropout, **config)
    model.build()
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE, global_clipnorm=CLIP_NORM))
    return model


def keras_step(model, tokens):
    """() -> loss float, one `TransformerXL.train_step` (Keras' own train function on a tf.data iterator)."""
    import tensorflow as tf

    iterator = iter(tf.data.Dataset.from_tensors({"tokens": tf.constant(tokens)}).repeat().prefetch(2))
    model.make_train_function()

    def step():
        return float(model.train_function(iterator)["loss"])

    return step


# -- PyTorch: the same network ----------------------------------------------------------------------------------------

def torch_model(vocab, size, dropout):
    """A Transformer-XL in plain PyTorch; kernels stored [in, out] like Keras' so weights copy over as they are."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    D, H, inner = size["d_model"], size["num_heads"], size["d_inner"]
    d = D // H
    S, M = size["segment_len"], size["mem_len"]
    K = S + M

    def param(*shape):
        return nn.Parameter(torch.randn(*shape) * 0.02)

    def sinusoids(distances):  # keras_hub SinePositionEncoding's layout: even dims sin, odd dims cos
        dims = torch.arange(D)
        timescales = (1.0 / 10000) ** ((2 * (dims // 2)).float() / D)
        angles = distances.float()[:, None] * timescales[None]
        return torch.where(dims % 2 == 0, torch.sin(angles), torch.cos(angles))

    def rel_shift(x):  # [B, H, Q, K] by (query, distance column) -> by (query, key)
        b, h, q, k = x.shape
        x = F.pad(x, (1, 0)).view(b, h, k + 1, q)[:, :, 1:, :]
        return x.reshape(b, h, q, k)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key_value = param(D, D), param(D, 2 * D)
            self.position, self.output = param(D, D), param(D, D)
            self.u, self.v = param(H, d), param(H, d)
            self.norm1, self.norm2 = nn.LayerNorm(D, eps=1e-5), nn.LayerNorm(D, eps=1e-5)
            self.inner, self.inner_bias = param(D, inner), nn.Parameter(torch.zeros(inner))
            self.outer, self.outer_bias = param(inner, D), nn.Parameter(torch.zeros(D))

        def forward(self, h, memory, r, mask):
            B = h.shape[0]
            q = (h @ self.query).view(B, S, H, d)
            k, v = (torch.cat([memory, h], 1) @ self.key_value).split(D, dim=-1)
            k, v = k.view(B, K, H, d), v.view(B, K, H, d)
            r_k = (r @ self.position).view(K, H, d)
            ac = torch.einsum("bihd,bjhd->bhij", q + self.u, k)
            bd = rel_shift(torch.einsum("bihd,jhd->bhij", q + self.v, r_k))
            scores = ((ac + bd) / math.sqrt(d)).masked_fill(~mask, -1e9)
            attended = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v).reshape(B, S, D)
            h = self.norm1(h + F.dropout(attended @ self.output, dropout, self.training))
            x = F.dropout(F.relu(h @ self.inner + self.inner_bias), dropout, self.training)
            return self.norm2(h + F.dropout(x @ self.outer + self.outer_bias, dropout, self.training))

    class TorchTransformerXL(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = param(vocab, D)
            self.output_bias = nn.Parameter(torch.zeros(vocab))
            self.blocks = nn.ModuleList([Block() for _ in range(size["num_layers"])])
            self.register_buffer("r", sinusoids(torch.arange(K - 1, -1, -1)))

        def segment(self, tokens, memory, mem_valid):
            """tokens [B, S]; memory list of [B, M, D] -> (logits [B, S, V], new memory)."""
            h = F.dropout(self.embedding[tokens] * math.sqrt(D), dropout, self.training)
            r = F.dropout(self.r, dropout, self.training)
            slots = torch.arange(K)[None]
            mask = (slots <= M + torch.arange(S)[:, None]) & (slots >= M - mem_valid)
            new_memory = []
            for block, mem in zip(self.blocks, memory):
                new_memory.append(torch.cat([mem, h], 1)[:, -M:].detach())
                h = block(h, mem, r, mask)
            h = F.dropout(h, dropout, self.training)
            return h @ self.embedding.T + self.output_bias, new_memory

    return TorchTransformerXL()


def copy_keras_weights(keras_model, torch_model):
    """Keras variables -> the PyTorch parameters of the same role (kernels are [in, out] on both sides)."""
    import torch

    values = {v.path: np.asarray(v.numpy()) for v in keras_model.weights}

    def find(suffix):
        matches = [path for path in values if path.endswith(suffix)]
        assert len(matches) == 1, (suffix, matches)
        return torch.from_numpy(values[matches[0]])

    with torch.no_grad():
        torch_model.embedding.copy_(find("embedding/embeddings"))
        torch_model.output_bias.copy_(find("output_bias"))
        for i, block in enumerate(torch_model.blocks):
            p = f"block_{i}/"
            for name, suffix in [("query", "attention/query/kernel"), ("key_value", "attention/key_value/kernel"),
                                 ("position", "attention/position/kernel"), ("output", "attention/output/kernel"),
                                 ("u", "attention/u"), ("v", "attention/v"), ("inner", "feed_forward/inner/kernel"),
                                 ("inner_bias", "feed_forward/inner/bias"), ("outer", "feed_forward/outer/kernel"),
                                 ("outer_bias", "feed_forward/outer/bias")]:
                getattr(block, name).copy_(find(p + suffix))
            block.norm1.weight.copy_(find(p + "attention/norm/gamma"))
            block.norm1.bias.copy_(find(p + "attention/norm/beta"))
            block.norm2.weight.copy_(find(p + "feed_forward/norm/gamma"))
            block.norm2.bias.copy_(find(p + "feed_forward/norm/beta"))


def torch_step(model, tokens, size):
    """() -> loss float: segments in order with memory, a backward pass per segment, clip, Adam."""
    import torch
    import torch.nn.functional as F

    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    tokens = torch.from_numpy(tokens)
    S, M, D = size["segment_len"], size["mem_len"], size["d_model"]
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    count = inputs.shape[1] // S

    def step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        memory = [torch.zeros(tokens.shape[0], M, D)] * len(model.blocks)
        mem_valid, total = 0, 0.0
        for i in range(count):
            logits, memory = model.segment(inputs[:, i * S:(i + 1) * S], memory, mem_valid)
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets[:, i * S:(i + 1) * S].reshape(-1),
                                  reduction="sum")
            (nll / targets.numel()).backward()
            total += float(nll)
            mem_valid = min(mem_valid + S, M)
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        return total / targets.numel()

    return step


def first_losses(vocab, size, tokens):
    """Same weights, dropout off: (Keras loss, PyTorch loss) of one step on `tokens`."""
    k_model, t_model = keras_model(vocab, size, 0.0), torch_model(vocab, size, 0.0)
    copy_keras_weights(k_model, t_model)
    return keras_step(k_model, tokens)(), torch_step(t_model, tokens, size)()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["cpu", "preset"], choices=sorted(SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per contender per round")
    parser.add_argument("--preset-rounds", type=int, default=2, help="rounds of one step each for the preset size")
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    import tensorflow as tf
    import torch

    torch_threads = torch.get_num_threads()

    from musicgen_tf.music.remi import RemiConverter

    vocab = RemiConverter().vocab_size
    print(f"TF {tf.__version__} (intra-op threads {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}),"
          f" torch {torch.__version__} (threads {torch.get_num_threads()}); {len(os.sched_getaffinity(0))} CPUs; "
          f"REMI vocabulary {vocab}")
    ratios = {}
    for name in args.sizes:
        size = SIZES[name]
        tokens = random_tokens(vocab, size["batch"], size["length"])
        keras_loss, torch_loss = first_losses(vocab, size, tokens)
        print(f"\n{name}: {size}")
        print(f"  same weights, dropout 0: first loss keras {keras_loss:.6f}, torch {torch_loss:.6f}")
        assert abs(keras_loss - torch_loss) < 1e-3 * max(1.0, abs(torch_loss)), "not the same network"
        k_model, t_model = keras_model(vocab, size, 0.1), torch_model(vocab, size, 0.1)
        copy_keras_weights(k_model, t_model)
        contenders = {f"pytorch ({threads} thr)": with_torch_threads(torch_step(t_model, tokens, size), threads)
                      for threads in sorted({torch_threads, 1}, reverse=True)}
        contenders["keras"] = keras_step(k_model, tokens)
        rounds, steps = (args.rounds, args.steps) if name != "preset" else (args.preset_rounds, 1)
        times = interleaved_times(contenders, rounds, steps, args.warmup)
        ms = {k: statistics.median(v) for k, v in times.items()}
        tokens_per_step = size["batch"] * (size["length"] - 1)
        for contender, value in ms.items():
            print(f"  {contender:<16} median {value:9.1f} ms/step (range {min(times[contender]):.0f}-"
                  f"{max(times[contender]):.0f}), {1000 * tokens_per_step / value:8.0f} tokens/s")
        best_torch = min(value for contender, value in ms.items() if contender.startswith("pytorch"))
        ratios[name] = best_torch / ms["keras"]
        print(f"  keras vs the faster pytorch: {ratios[name]:.2f}x")
    headline = "preset" if "preset" in ratios else args.sizes[0]
    for name, ratio in ratios.items():
        if name != headline:
            print(f"RESULT txl_keras_vs_torch_step_{name} {ratio:.2f}x (target >= 1.0x)")
    print(f"RESULT txl_keras_vs_torch_step {ratios[headline]:.2f}x (target >= 1.0x)")


if __name__ == "__main__":
    main()

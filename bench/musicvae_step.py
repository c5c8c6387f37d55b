"""MusicVAE train-step time: `musicgen_tf.models.music_vae.MusicVAE` (Keras 3 on TF) vs a plain PyTorch reference.

Same architecture, sizes, batch, loss and optimizer on both sides, in one process on the same CPU cores
(`--threads`, default all).  Each framework uses them as `musicgen train` / plain PyTorch would:

    PyTorch      intra-op threads = cores (its eager autograd runs one op at a time), and also one thread: the
                 faster of the two is the reference (on a loaded machine its threads wait for each other)
    TensorFlow   inter-op pool = one thread per core (its default), running independent ops side by side: here the
                 encoder's two directions and the decoder's two batch slices (`fused_lstm.concurrent_chains`);
                 intra-op threads = cores / 2 chains (`train.runtime.share_cpu_threads`, as `musicgen train` sets)


    tokens int [B=64, T=32] (melody vocabulary 90) -> one-hot (Magenta's inputs) -> BiLSTM encoder (512 per
    direction) -> mu, softplus sigma (latent 256) -> z -> Dense+tanh initial states -> 2-layer LSTM decoder
    (512, 512), teacher forced on [previous token's one-hot, z] -> Dense(90) logits;  loss = CE (summed over
    time) + beta * KL;  Adam(1e-3).  The Keras model is the Magenta-exact network (`LSTMBlockCell` layout, one-hot
    inputs looked up as rows of the input kernel); PyTorch multiplies the one-hot vectors as a plain port would.

Keras runs the project's own model and its real `train_step` through `model.make_train_function()` over a
`tf.data` iterator (what `fit` runs per step), with `jit_compile=False` and `jit_compile=True`.  PyTorch runs a
small faithful MusicVAE (`nn.Embedding`, bidirectional `nn.LSTM`, `nn.LSTM` decoder).  Steps are timed in
interleaved rounds (torch, keras, keras+XLA, torch, ...) so load from other jobs hits every contender alike; the
reported time is the median step over all rounds after warm-up.

    pip install -e '.[bench]'            # torch==2.13.0 (CPU wheel)
    python bench/musicvae_step.py [--threads 2] [--rounds 6] [--steps 5] [--warmup 3]

Prints the CPU model and its vector extensions (`bench/cpuinfo.py`) and which kernels each framework uses: the
ratio depends on them (see `bench/lstm_kernels.py`).  Last line: `RESULT keras_vs_torch_step_speed <torch_ms /
keras_ms>x (target >= 1.0x) on <CPU> [<avx2 fma avx512f present>]` (Keras = the faster of the two `jit_compile`
settings).
"""

from __future__ import annotations

import argparse
import math
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402

from cpuinfo import cpu_info, cpu_line  # noqa: E402  (bench/cpuinfo.py, beside this script)
from timing import median_ms, with_torch_threads  # noqa: E402

# Environment variables that cap the instruction set of PyTorch's elementwise kernels, MKL, oneDNN and XLA (set
# them as `bench/lstm_kernels.py --isa avx2` does to make an AVX-512 machine behave like an AVX2-only one).
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "XLA_FLAGS",
                 "TF_ENABLE_ONEDNN_OPTS")

BATCH, SEQ_LEN, VOCAB = 64, 32, 90
ENCODER_UNITS, LATENT, DECODER_UNITS = 512, 256, (512, 512)
MAX_BETA, BETA_RATE, FREE_BITS, LEARNING_RATE = 0.2, 0.99999, 0.0, 1e-3


def random_tokens(seed=0):
    """int64 [BATCH, SEQ_LEN] melody tokens in [0, VOCAB)."""
    return np.random.default_rng(seed).integers(0, VOCAB, size=(BATCH, SEQ_LEN)).astype(np.int64)


# -- Keras: the project's model ---------------------------------------------------------------------------------------

def keras_step(tokens, jit_compile):
    """() -> loss float, one `MusicVAE.train_step` (Keras' own train function on a tf.data iterator)."""
    import keras
    import tensorflow as tf

    from musicgen_tf.models.music_vae import MusicVAE

    keras.utils.set_random_seed(0)
    model = MusicVAE(vocab_size=VOCAB, seq_len=SEQ_LEN, encoder_units=(ENCODER_UNITS,), latent_dim=LATENT,
                     decoder_units=DECODER_UNITS, free_bits=FREE_BITS, max_beta=MAX_BETA, beta_rate=BETA_RATE)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=jit_compile)
    iterator = iter(tf.data.Dataset.from_tensors({"tokens": tf.constant(tokens)}).repeat().prefetch(2))
    model.make_train_function()

    def step():
        return float(model.train_function(iterator)["loss"])

    return step


# -- PyTorch: the reference -------------------------------------------------------------------------------------------

def torch_step(tokens):
    """() -> loss float, one training step of a plain PyTorch MusicVAE of the same sizes."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.manual_seed(0)

    class TorchMusicVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(VOCAB, ENCODER_UNITS, batch_first=True, bidirectional=True)
            self.z_mean = nn.Linear(2 * ENCODER_UNITS, LATENT)
            self.z_sigma = nn.Linear(2 * ENCODER_UNITS, LATENT)
            self.initial_state = nn.Linear(LATENT, 2 * sum(DECODER_UNITS))
            self.decoder = nn.LSTM(VOCAB + LATENT, DECODER_UNITS[0], num_layers=len(DECODER_UNITS),
                                   batch_first=True)
            self.output_projection = nn.Linear(DECODER_UNITS[-1], VOCAB)
            for layer in (self.z_mean, self.z_sigma, self.initial_state):
                nn.init.normal_(layer.weight, std=0.001)

        def forward(self, tokens):
            x = F.one_hot(tokens, VOCAB).float()  # [B, T, V]
            _, (h, _) = self.encoder(x)  # h: [2, B, H], forward then backward direction
            h = torch.cat([h[0], h[1]], dim=-1)
            z_mean, z_sigma = self.z_mean(h), F.softplus(self.z_sigma(h))
            z = z_mean + z_sigma * torch.randn_like(z_mean)
            states = torch.tanh(self.initial_state(z)).split(DECODER_UNITS[0], dim=-1)  # h0, c0, h1, c1
            h0, c0 = torch.stack(states[0::2]), torch.stack(states[1::2])
            previous = F.pad(x[:, :-1], (0, 0, 1, 0))  # zeros, then x[t-1]
            inputs = torch.cat([previous, z[:, None].expand(-1, SEQ_LEN, -1)], dim=-1)
            out, _ = self.decoder(inputs, (h0.contiguous(), c0.contiguous()))
            return self.output_projection(out), z_mean, z_sigma

    model = TorchMusicVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    tokens = torch.from_numpy(tokens)
    iteration = [0]

    def step():
        logits, z_mean, z_sigma = model(tokens)
        reconstruction = F.cross_entropy(logits.reshape(-1, VOCAB), tokens.reshape(-1), reduction="none")
        reconstruction = reconstruction.view(BATCH, SEQ_LEN).sum(1).mean()
        kl = 0.5 * (z_mean ** 2 + z_sigma ** 2 - 1.0 - 2.0 * torch.log(z_sigma)).sum(-1)
        kl_cost = torch.clamp(kl - FREE_BITS * math.log(2.0), min=0.0).mean()
        beta = (1.0 - BETA_RATE ** iteration[0]) * MAX_BETA
        loss = reconstruction + beta * kl_cost
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration[0] += 1
        return float(loss)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU cores to use")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per contender per round")
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    import tensorflow as tf
    import torch

    from musicgen_tf.models.fused_lstm import concurrent_chains
    from musicgen_tf.train.runtime import share_cpu_threads

    os.environ.pop("TF_NUM_INTRAOP_THREADS", None)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    share_cpu_threads(concurrent_chains(), cores=args.threads)
    torch.set_num_threads(args.threads)

    tokens = random_tokens()
    # PyTorch at all cores and at one thread (one model: the faster setting is the reference, see with_torch_threads)
    torch_model_step = torch_step(tokens)
    contenders = {f"pytorch ({threads} thr)": with_torch_threads(torch_model_step, threads)
                  for threads in sorted({args.threads, 1}, reverse=True)}
    contenders.update({"keras (jit_compile=False)": keras_step(tokens, False),
                       "keras (jit_compile=True)": keras_step(tokens, True)})
    ms = median_ms(contenders, args.rounds, args.steps, args.warmup)

    print(f"B={BATCH} T={SEQ_LEN} vocab={VOCAB} one-hot inputs encoder=({ENCODER_UNITS},) x2 latent={LATENT} "
          f"decoder={DECODER_UNITS}; {os.cpu_count()} CPUs")
    print(cpu_line())
    capped = {k: os.environ[k] for k in ISA_VARIABLES if k in os.environ}
    blas = "MKL" if torch.backends.mkl.is_available() else "?"
    print(f"kernels: PyTorch ATen {torch.backends.cpu.get_cpu_capability()}, BLAS {blas}; "
          f"TensorFlow oneDNN {'off' if os.environ.get('TF_ENABLE_ONEDNN_OPTS') == '0' else 'on'}"
          + (f"; capped by {capped}" if capped else ""))
    print(f"threads: torch intra_op={args.threads} and 1; TF inter_op="
          f"{tf.config.threading.get_inter_op_parallelism_threads()}, intra_op="
          f"{tf.config.threading.get_intra_op_parallelism_threads()} x {concurrent_chains()} concurrent chains")
    print(f"median over {args.rounds} x {args.steps} steps after {args.warmup} warm-up steps:")
    torch_ms = min(value for name, value in ms.items() if name.startswith("pytorch"))
    for name, value in ms.items():
        print(f"  {name:<28} {value:8.1f} ms/step   ({torch_ms / value:.2f}x the faster pytorch)")
    keras_ms = min(ms["keras (jit_compile=False)"], ms["keras (jit_compile=True)"])
    print(f"RESULT keras_vs_torch_step_speed {torch_ms / keras_ms:.2f}x (target >= 1.0x) on {cpu_info()['model']} "
          f"[{' '.join(f for f in cpu_info()['flags'] if f in ('avx2', 'fma', 'avx512f'))}]")


if __name__ == "__main__":
    main()

"""Precision, XLA and distribution strategy: chosen by flags only, so CPU tests and GPU training run the same code."""

from __future__ import annotations

import os
import sys

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi-worker")


def set_precision(mixed_precision: bool) -> str:
    """`mixed_float16` computes in float16 with float32 variables; Keras wraps the optimizer in loss scaling."""
    policy = "mixed_float16" if mixed_precision else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def resolve_mixed_precision(setting) -> bool:
    """True/"on", False/"off", or "auto" (on exactly when TensorFlow sees a GPU: float16 only pays there)."""
    if isinstance(setting, bool):
        return setting
    if setting == "auto":
        return bool(tf.config.list_physical_devices("GPU"))
    if setting in ("on", "off"):
        return setting == "on"
    raise ValueError(f"mixed precision must be on, off or auto, got {setting!r}")


def share_cpu_threads(concurrent_chains: int, cores: int | None = None) -> int | None:
    """On a CPU-only machine, give each of a model's concurrent op chains its share of the cores.

    TensorFlow runs independent ops side by side in its inter-op pool (one thread per core), and each op may fan
    out over the intra-op pool (also one thread per core by default).  A model that keeps `concurrent_chains`
    chains busy (MusicVAE's recurrences: `fused_lstm.concurrent_chains`) then asks for chains x cores threads;
    cores / chains intra-op threads keep the cores busy without oversubscribing them (the usual TensorFlow CPU
    tuning for models with parallel branches).  Left alone: GPU machines, a user's own `TF_NUM_INTRAOP_THREADS`,
    and a runtime that has already started (the pools are fixed then).
    cores: default, the CPUs this process may run on.  Returns the intra-op threads set, or None when left alone.
    """
    if concurrent_chains <= 1 or "TF_NUM_INTRAOP_THREADS" in os.environ or tf.config.list_physical_devices("GPU"):
        return None
    threads = max(1, (cores or len(os.sched_getaffinity(0))) // concurrent_chains)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # already initialized with another value
        return None
    return threads


def make_strategy(name: str = "default") -> tf.distribute.Strategy:
    """`mirrored`: all local GPUs; `multi-worker`: the processes/hosts listed in the TF_CONFIG environment variable.

    Create it before anything else runs TensorFlow ops (MultiWorkerMirrored configures the runtime).  A mirrored
    strategy that finds a single device says so: it would train exactly as the default strategy does.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        if strategy.num_replicas_in_sync == 1:
            devices = ", ".join(strategy.extended.worker_devices)
            print(f"note: --strategy mirrored found one device ({devices}), so it trains exactly as the default "
                  "strategy; it splits each batch over several GPUs (none visible here). Several processes or "
                  "hosts: --strategy multi-worker with TF_CONFIG.", file=sys.stderr)
        return strategy
    if name == "multi-worker":
        from musicgen_tf.train.distributed import read_tf_config

        read_tf_config()  # a clear message for a missing or malformed TF_CONFIG
        # Gradients travel in 32 MB packs: one all-reduce per pack instead of one per variable (each a round trip).
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(bytes_per_pack=32 << 20))
    raise ValueError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def enable_determinism(seed: int, deterministic_ops: bool = True) -> None:
    """Same seed, same data order, same ops -> same weights: what exact resume is tested against.

    Keras turns XLA off when op determinism is on, so an XLA run gets seeds only (bit-exact resume is then not
    promised; the run still resumes at the same step with the same data order).
    """
    keras.utils.set_random_seed(seed)
    if deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    else:  # undo an earlier enable in this process (no public API for it)
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()

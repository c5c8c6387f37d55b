"""Multi-worker training speed: steps/s of a small GrooVAE with 1 and with 2 local workers, each pinned to one core.

Both runs train the same model on the same global batch with `musicgen train`; the two-worker run uses
`--strategy multi-worker` with a localhost TF_CONFIG, each worker `taskset` to its own core, so each computes half
of every batch and the gradients are all-reduced over gRPC between the processes.  Ideal is 2x.

    GrooVAE (groovae_2bar layout): BiLSTM encoder 256, latent 64, 2-layer LSTM decoder (256, 256), dropout 0.7;
    drum hits/velocities/offsets [B, 32, 27] from a generated Groove-layout corpus (`tests/fixtures.groove_records`).

Two global batches: the preset's own (512, Magenta's GrooVAE batch: what a user who scales out trains with) for the
headline, and 64, where the per-step communication weighs most (see the README's "What keeps two workers from 2x").
Steps/s come from the chief's TensorBoard step events (wall time of each logged step), skipping the first
`--warmup` steps (tracing, start-up) -- so process start-up and the all-reduce set-up are not counted.

    python bench/multi_worker.py [--steps 30] [--warmup 6] [--batch-sizes 512,64]

Last lines: `RESULT multi_worker_2_vs_1 <x> (target >= 1.6x)` at the first batch size, then
`RESULT multi_worker_2_vs_1_batch<B> <x>` for the others.  Needs two cores and Linux `taskset`; on a machine shared
with other jobs the figures are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import MappingProxyType

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]
PRESET = "groovae_2bar_bench"
MODEL = {"encoder_units": (256,), "decoder_units": (256, 256), "latent_dim": 64}


def register_bench_preset(batch_size: int, steps: int) -> None:
    from musicgen_tf import configs

    base = configs.get_preset("groovae_2bar")
    train = dataclasses.replace(base.train, batch_size=batch_size, total_steps=steps, steps_per_epoch=steps,
                                sample_every_epochs=10 ** 6, shuffle_buffer=256)
    configs.register(dataclasses.replace(base, name=PRESET, model=MappingProxyType({**base.model, **MODEL}),
                                         train=train))


def worker_main(args) -> int:
    """One training process (the bench preset exists only in processes that register it)."""
    register_bench_preset(args.batch_size, args.steps)
    from musicgen_tf.cli import main

    command = ["train", "--preset", PRESET, "--data", args.data, "--run-dir", args.run_dir]
    if "TF_CONFIG" in os.environ:
        command += ["--strategy", "multi-worker"]
    return main(command)


def steps_per_second(run_dir: Path, warmup: int) -> float:
    """From the chief's TensorBoard `batch_loss` events: logged steps after `warmup` over their wall time."""
    import tensorflow as tf

    times = {}
    for path in glob.glob(str(run_dir / "logs" / "train" / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            if any(value.tag == "batch_loss" for value in event.summary.value):
                times[event.step] = event.wall_time
    steps = sorted(step for step in times if step > warmup)
    if len(steps) < 2:
        raise SystemExit(f"too few logged steps after warm-up in {run_dir}: {sorted(times)}")
    return (steps[-1] - steps[0]) / (times[steps[-1]] - times[steps[0]])


def run_workers(count: int, args, records: Path, run_dir: Path) -> float:
    from musicgen_tf.train.distributed import free_ports, local_tf_config

    ports = free_ports(count)
    processes = []
    for index in range(count):
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if count > 1:
            env["TF_CONFIG"] = local_tf_config(ports, index)
        command = ["taskset", "-c", str(index), sys.executable, __file__, "--worker", "--data", str(records),
                   "--run-dir", str(run_dir), "--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True))
    for process in processes:
        _, err = process.communicate()
        if process.returncode:
            raise SystemExit(f"a worker failed ({process.returncode}):\n{err[-3000:]}")
    return steps_per_second(run_dir, args.warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--batch-sizes", default="512,64", help="global batches, comma-separated (headline first)")
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)  # a worker's
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        sys.exit(worker_main(args))
    if len(os.sched_getaffinity(0)) < 2 or not shutil.which("taskset"):
        raise SystemExit("needs two usable cores and taskset")
    from cpuinfo import cpu_line

    print(cpu_line())
    folder = Path(tempfile.mkdtemp(prefix="bench-multi-worker-"))
    try:
        from tests import fixtures

        records = fixtures.groove_records(folder, bars=32)
        ratios = {}
        for batch_size in [int(size) for size in args.batch_sizes.split(",")]:
            args.batch_size = batch_size
            results = {}
            for count in (1, 2):
                started = time.time()
                results[count] = run_workers(count, args, records, folder / f"run-{batch_size}-{count}")
                print(f"{count} worker(s), global batch {batch_size}: {results[count]:.2f} steps/s "
                      f"({1000 / results[count]:.0f} ms/step; {time.time() - started:.0f} s with start-up)", flush=True)
            ratios[batch_size] = results[2] / results[1]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for index, (batch_size, ratio) in enumerate(ratios.items()):
        if index == 0:
            print(f"RESULT multi_worker_2_vs_1 {ratio:.2f}x (target >= 1.6x; global batch {batch_size})")
        else:
            print(f"RESULT multi_worker_2_vs_1_batch{batch_size} {ratio:.2f}x")


if __name__ == "__main__":
    main()

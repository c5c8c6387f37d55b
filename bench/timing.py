"""Side-by-side step timing shared by the bench scripts: contenders take turns, so load from other jobs on a shared
machine hits them alike."""

from __future__ import annotations

import math
import statistics
import time


def interleaved_times(contenders: dict, rounds: int, steps: int, warmup: int) -> dict[str, list[float]]:
    """{name: step() -> loss or None} -> {name: [ms per timed step]}: `warmup` untimed steps each, then `rounds`
    rounds in which every contender runs `steps` timed steps in turn.  A non-finite loss stops the bench."""
    for name, step in contenders.items():
        for _ in range(warmup):
            step()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, step in contenders.items():
            for _ in range(steps):
                start = time.perf_counter()
                loss = step()
                times[name].append(1000 * (time.perf_counter() - start))
            assert loss is None or math.isfinite(loss), (name, loss)
    return times


def median_ms(contenders: dict, rounds: int, steps: int, warmup: int) -> dict[str, float]:
    """{name: step()} -> {name: median ms per step} (see `interleaved_times`)."""
    return {name: statistics.median(values)
            for name, values in interleaved_times(contenders, rounds, steps, warmup).items()}


def with_torch_threads(step, threads):
    """step, run with PyTorch's OpenMP threads set to `threads`.  On a CPU shared with other jobs all cores can be
    much slower than one (its threads wait for each other at every op), so benches time both and count the faster."""
    import torch

    def run():
        torch.set_num_threads(threads)
        return step()

    return run

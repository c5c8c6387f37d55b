"""Training on several processes or hosts (`--strategy multi-worker`): roles, per-worker folders, data sharding.

Every worker runs the same command with its own `TF_CONFIG`.  They hold identical weights (MultiWorkerMirrored:
gradients are all-reduced each step), so only the chief (worker 0, or the task of type "chief") writes the run
directory; the others run the same callbacks into a temporary folder that is removed when they exit.

Resume: the chief's `<run>/backup/` is the one truth.  A restarted non-chief copies it into its temporary folder
before training, so Keras' `BackupAndRestore` on every worker restores the same epoch, weights and optimizer
state.  The run directory must therefore be on a path every worker can read (a shared mount; on one host, any
folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf

from musicgen_tf.errors import MusicgenError


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    is_chief: bool
    index: int  # task index within its type
    num_workers: int  # processes in the cluster (chief included)

    @property
    def name(self) -> str:
        return "chief" if self.is_chief else f"worker {self.index}"


def read_tf_config() -> dict:
    """Parse and check `TF_CONFIG`, with messages that say what is missing."""
    text = os.environ.get("TF_CONFIG")
    example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:23456", "host2:23456"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise MusicgenError(f"--strategy multi-worker needs the TF_CONFIG environment variable on every worker, "
                            f"e.g. {example} (index 1 on the second host)")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        members = cluster[task["type"]]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise MusicgenError(f"TF_CONFIG is not valid ({error!r}); expected e.g. {example}") from error
    if not 0 <= index < len(members):
        raise MusicgenError(f"TF_CONFIG task index {index} is outside its {task['type']} list of {len(members)}")
    return config


def tf_config_is_chief() -> bool:
    """From TF_CONFIG alone: a task of type "chief", or worker 0 of a cluster without one (MultiWorkerMirrored's rule)."""
    config = read_tf_config()
    task = config["task"]
    if "chief" in config["cluster"]:
        return task["type"] == "chief"
    return task["type"] == "worker" and int(task["index"]) == 0


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    """Chief or not, from the strategy (a one-process strategy is its own chief)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)():
        return WorkerRole(True, 0, 1)
    cluster = resolver.cluster_spec().as_dict()
    workers = sum(len(hosts) for kind, hosts in cluster.items() if kind in ("chief", "worker"))
    return WorkerRole(bool(strategy.extended.should_checkpoint), int(resolver.task_id or 0), workers)


@contextlib.contextmanager
def worker_run_path(run_path: os.PathLike, role: WorkerRole):
    """The folder this worker writes: the run directory for the chief, a temporary one (removed after) otherwise.

    A non-chief's folder starts with a copy of the chief's `backup/`, so it restores the same training state."""
    if role.is_chief:
        yield os.fspath(run_path)
        return
    folder = tempfile.mkdtemp(prefix=f"musicgen-worker{role.index}-")
    try:
        chief_backup = os.path.join(os.fspath(run_path), "backup")
        if os.path.isdir(chief_backup):
            shutil.copytree(chief_backup, os.path.join(folder, "backup"))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Each worker reads the whole (seeded, identically shuffled) stream and keeps its part of every global batch.

    With file sharding, a two-worker run would see other batches than a one-worker run (and fewer files than
    workers would fail); data sharding keeps the global batches, and so the losses and exact resume, the same.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


PACKED_LOGS = "packed_step_logs"


def one_collective_for_step_logs(model) -> None:
    """Average each step's scalar logs over the workers in one all-reduce instead of one per log.

    Under MultiWorkerMirrored, Keras (3.x, `reduce_per_replica`) reduces every value a train/test step returns in
    its own collective, a gRPC round trip each; with ~6 logs that cost more per step than all-reducing the
    gradients.  Here the step returns its scalars stacked as one [1, n] tensor (Keras' multi-worker "mean" reduces
    along axis 0, so a [1, n] row is averaged over workers), and the train/test functions Keras builds unpack it into
    the named logs again before any callback sees them.  Epoch logs (History, TensorBoard, checkpoints' monitors)
    do not use these: Keras reads the metric variables, summed over all workers, so they are exact global values.
    """
    names: dict[str, list[str]] = {}  # step kind -> log names, in packing order (fixed when the step is traced)

    def packing(kind, step):
        def packed(data):
            logs = step(data)
            names[kind] = list(logs)
            row = tf.stack([tf.cast(tf.reshape(value, []), tf.float32) for value in logs.values()])
            return {PACKED_LOGS: row[None]}
        return packed

    def unpacking(kind, make_function, attribute):
        def make(force=False):
            make_function(force)
            function = getattr(model, attribute)
            if getattr(function, "unpacks_logs", False):
                return function

            def unpacked(iterator):
                row = tf.reshape(function(iterator)[PACKED_LOGS], [-1])  # [1, n] when nothing was reduced
                return {name: row[index] for index, name in enumerate(names[kind])}

            unpacked.unpacks_logs = True
            setattr(model, attribute, unpacked)
            return unpacked
        return make

    model.train_step = packing("train", model.train_step)
    model.test_step = packing("test", model.test_step)
    model.make_train_function = unpacking("train", model.make_train_function, "train_function")
    model.make_test_function = unpacking("test", model.make_test_function, "test_function")


def free_ports(count: int) -> list[int]:
    """`count` TCP ports on localhost that were free a moment ago (for a local cluster: tests, benchmarks)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("localhost", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_tf_config(ports: list[int], index: int) -> str:
    """The TF_CONFIG of worker `index` in a cluster of local processes on `ports` (worker 0 is the chief)."""
    return json.dumps({"cluster": {"worker": [f"localhost:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})

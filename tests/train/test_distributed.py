"""Strategy set-up messages and the local-cluster helpers (no training: fast)."""

import json

import pytest
import tensorflow as tf

from musicgen_tf.errors import MusicgenError
from musicgen_tf.models.common import global_batch_draw
from musicgen_tf.train import distributed, runtime


@pytest.mark.parametrize("value, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid"),
    ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG is not valid"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}', "outside its worker list"),
])
def test_bad_tf_config_is_explained(monkeypatch, value, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if value is not None:
        monkeypatch.setenv("TF_CONFIG", value)
    with pytest.raises(MusicgenError, match=message):
        runtime.make_strategy("multi-worker")


def test_local_tf_config_lists_every_worker_and_the_task():
    ports = distributed.free_ports(3)
    assert len(set(ports)) == 3
    config = json.loads(distributed.local_tf_config(ports, 2))
    assert config == {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": 2}}


def test_mirrored_on_one_device_says_so(capsys):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    strategy = runtime.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 1
    assert "found one device" in capsys.readouterr().err
    assert distributed.worker_role(strategy) == distributed.WorkerRole(True, 0, 1)


def test_replicas_get_their_rows_of_one_global_draw():
    """Two replicas (two logical CPUs would need a fresh runtime, so a stand-in context): each replica's rows are
    the global draw's rows, so the union equals one process's draw."""
    full = tf.reshape(tf.range(24.0), [4, 6])
    draw = lambda shape: tf.reshape(tf.range(24.0), [4, 6])[:shape[0], :shape[1]]  # noqa: E731
    assert global_batch_draw(draw, [4, 6]).numpy().tolist() == full.numpy().tolist()  # one replica: unchanged

    class Context:
        num_replicas_in_sync = 2
        replica_id_in_sync_group = 1

    original = tf.distribute.get_replica_context
    tf.distribute.get_replica_context = lambda: Context()
    try:
        rows = global_batch_draw(lambda shape: tf.reshape(tf.range(24.0), shape), [2, 6])
        columns = global_batch_draw(lambda shape: tf.reshape(tf.range(24.0), shape), [4, 3], batch_axis=1)
    finally:
        tf.distribute.get_replica_context = original
    assert rows.numpy().tolist() == full[2:].numpy().tolist()
    assert columns.numpy().tolist() == full[:, 3:].numpy().tolist()


def test_gradient_accumulation_across_replicas_is_refused_before_anything_is_written(monkeypatch, tmp_path):
    import types

    from musicgen_tf.train.trainer import TrainOptions, train

    monkeypatch.setattr(runtime, "make_strategy", lambda name: types.SimpleNamespace(num_replicas_in_sync=2))
    with pytest.raises(MusicgenError, match="accumulates gradients over 2 steps"):
        train(TrainOptions(preset="beta_vae_pitch", data=str(tmp_path / "data"), run_dir=str(tmp_path / "run"),
                           tiny=True, strategy="mirrored"))
    assert not (tmp_path / "run").exists()

"""`--strategy mirrored` with two replicas, as on a two-GPU host: two logical CPU devices stand in for the GPUs.

The trainer runs unchanged (dict-shaped batches split over replicas, global-batch noise, the optimizer's sum and
clip); only the strategy's device list is given, since MirroredStrategy() alone finds no GPU here.  One step must
give the loss and the weights of a one-replica run with the same global batch.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests import fixtures

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]

TWO_REPLICAS = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from musicgen_tf.train import runtime, trainer
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
runtime.make_strategy = lambda name: mirrored if name == "mirrored" else tf.distribute.get_strategy()
data, run_dir, strategy = sys.argv[1:]
history = trainer.train(trainer.TrainOptions(preset="groovae_2bar", data=data, run_dir=run_dir, tiny=True, steps=1,
                                             steps_per_epoch=1, strategy=strategy, verbose=0))
print(json.dumps({"loss": history.history["loss"][0], "replicas": mirrored.num_replicas_in_sync}))
"""


def _train(data, run_dir, strategy):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", TWO_REPLICAS, str(data), str(run_dir), strategy], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_replicas_train_one_step_as_one_replica(tmp_path):
    records = fixtures.groove_records(tmp_path, bars=8)
    one = _train(records, tmp_path / "one", "default")
    two = _train(records, tmp_path / "two", "mirrored")
    assert two["replicas"] == 2
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-5)
    expected = fixtures.h5_weights(tmp_path / "one" / "model.weights.h5")
    got = fixtures.h5_weights(tmp_path / "two" / "model.weights.h5")
    assert expected.keys() == got.keys()
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-5, err_msg=name)

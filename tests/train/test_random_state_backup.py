"""The random-generator states a resume loads are those of the epoch Keras' backup restores, even when the run was
killed between the two writes."""

import os

import keras
import numpy as np

from musicgen_tf.train.callbacks import RandomStateBackup


def _model_and_state():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5)])
    (state,) = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
    return model, state


def _set(state, values):
    state.assign(np.array(values, dtype=state.dtype))


def test_states_are_kept_per_epoch_and_restored_for_the_epoch_keras_resumes_at(tmp_path):
    model, state = _model_and_state()
    saver = RandomStateBackup(tmp_path)
    saver.set_model(model)
    for epoch in range(3):  # epochs 1, 2, 3 end; say Keras' backup of epoch 3 was never written (killed in between)
        _set(state, [epoch, 10 + epoch])
        saver.on_epoch_end(epoch)
    assert sorted(os.listdir(tmp_path)) == ["random_states-0002.npz", "random_states-0003.npz"]  # no .tmp left

    _set(state, [99, 99])
    resumed = RandomStateBackup(tmp_path, resume_epoch=2)
    resumed.set_model(model)
    resumed.on_train_begin()
    assert state.numpy().tolist() == [1, 11]  # the states after epoch 2, not after epoch 3


def test_a_fresh_run_keeps_its_own_states(tmp_path):
    model, state = _model_and_state()
    saver = RandomStateBackup(tmp_path)
    saver.set_model(model)
    _set(state, [0, 5])
    saver.on_epoch_end(0)
    _set(state, [3, 4])
    fresh = RandomStateBackup(tmp_path, resume_epoch=0)
    fresh.set_model(model)
    fresh.on_train_begin()
    assert state.numpy().tolist() == [3, 4]

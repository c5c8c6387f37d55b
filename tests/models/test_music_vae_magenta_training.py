"""MusicVAE training details checked against Magenta's code: validation samples z from the posterior (base_model's
`eval` computes the training loss), and each encoder direction draws its own dropout mask (one DropoutWrapper per
cell in `lstm_utils.build_bidirectional_lstm`)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from musicgen_tf.models import music_vae
from musicgen_tf.models.music_vae import MusicVAE

TINY = dict(vocab_size=90, seq_len=8, encoder_units=(8,), latent_dim=64, decoder_units=(8,), embedding_dim=4)


def _batch(batch=16, seed=0):
    return {"tokens": np.random.default_rng(seed).integers(0, 90, size=(batch, 8)).astype(np.int64)}


def test_validation_decodes_z_drawn_from_the_posterior(monkeypatch):
    keras.utils.set_random_seed(0)
    model = MusicVAE(**TINY)
    model.compile(optimizer=keras.optimizers.Adam())
    batch = _batch()
    decoded = []
    original = model._decode_teacher_forced
    monkeypatch.setattr(model, "_decode_teacher_forced",
                        lambda targets, z_cond, training=False: decoded.append(z_cond) or original(targets, z_cond,
                                                                                                   training))
    z_mean, z_sigma = (t.numpy() for t in model.encode(batch))
    first = model.test_step(batch)
    second = model.test_step(batch)
    assert len(decoded) == 2
    noise = np.stack([(z.numpy() - z_mean) / z_sigma for z in decoded])  # [2, B, latent]: should be N(0, 1) draws
    assert not np.allclose(decoded[0], z_mean) and not np.allclose(decoded[0], decoded[1])
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1.0) < 0.1, (noise.mean(), noise.std())
    assert float(first["loss"]) != float(second["loss"])  # means of two different draws
    # the mean is still what encode / generation use
    np.testing.assert_allclose(model(batch, training=False)["z_mean"], z_mean, rtol=1e-6)


def test_each_encoder_direction_gets_its_own_dropout_mask(monkeypatch):
    keras.utils.set_random_seed(0)
    # dense learned-embedding inputs, so a zero can only be a dropped unit (a one-hot input is mostly zeros already)
    model = MusicVAE(**TINY, dropout=0.5, input_encoding="embedding")
    inputs = {}
    original = music_vae.run_lstm

    def spy(lstm, x, *args, reverse=False, **kwargs):
        inputs[reverse] = x
        return original(lstm, x, *args, reverse=reverse, **kwargs)

    monkeypatch.setattr(music_vae, "run_lstm", spy)
    features = model.step_features.lstm_inputs(tf.constant(_batch()["tokens"]))
    model.encoder(features, training=True)
    forward, backward = inputs[False], inputs[True]  # float [T, B, F] after dropout
    assert forward.shape == backward.shape
    dropped_fw, dropped_bw = (x.numpy() == 0 for x in (forward, backward))
    assert 0.3 < dropped_fw.mean() < 0.7 and 0.3 < dropped_bw.mean() < 0.7
    assert (dropped_fw != dropped_bw).mean() > 0.3  # independent masks disagree about half the time
    # without training both directions read the same, undropped input
    model.encoder(features, training=False)
    assert inputs[False] is inputs[True]

"""MusicVAE's Magenta structure: the fused LSTM in `LSTMBlockCell` layout against TensorFlow's own BlockLSTM op (the
kernel Magenta's `LSTMBlockCell` runs), the (c, h) initial-state split, and the one-hot / drum-bit inputs."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.ops import rnn_grad  # noqa: F401  (registers BlockLSTM's gradient)

from musicgen_tf.models.fused_lstm import OneHotTokens, lstm_step, run_lstm
from musicgen_tf.models.music_vae import LstmStack, MusicVAE
from tests.models import assert_same_values_and_gradients

T, N, F, E, H = 5, 3, 4, 2, 6


def _block_lstm(x, h0, c0, kernel, bias):
    """TF's BlockLSTM op (gates i, c, f, o; forget bias 1.0): x [T, N, F], kernel [F + H, 4H] -> (hs, h, c)."""
    zeros = tf.zeros([h0.shape[-1]])
    out = tf.raw_ops.BlockLSTM(seq_len_max=tf.constant(x.shape[0], tf.int64), x=x, cs_prev=c0, h_prev=h0, w=kernel,
                               wci=zeros, wcf=zeros, wco=zeros, b=bias, forget_bias=1.0, cell_clip=-1.0,
                               use_peephole=False)
    return out[6], out[6][-1], out[1][-1]


def _random_lstm(rng, input_depth):
    lstm = keras.layers.LSTM(H, return_sequences=True, unit_forget_bias=False)
    lstm.build((None, None, input_depth))
    for weight in lstm.weights:
        weight.assign(rng.normal(size=weight.shape) * 0.7)
    return lstm


@pytest.mark.parametrize("xla_gates", [False, True], ids=["plain_gates", "xla_gates"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_fused_block_lstm_matches_tf_block_lstm_values_and_gradients(reverse, xla_gates):
    rng = np.random.default_rng(0)
    lstm = _random_lstm(rng, F + E)
    x = tf.constant(rng.normal(size=(T, N, F)), tf.float32)
    constant = tf.constant(rng.normal(size=(N, E)), tf.float32)
    h0, c0 = (tf.constant(rng.normal(size=(N, H)), tf.float32) for _ in range(2))
    weights = [tf.constant(rng.normal(size=(T, N, H)), tf.float32), tf.constant(rng.normal(size=(N, H)), tf.float32)]
    cell = lstm.cell

    def loss_block_op():
        inputs = tf.concat([x, tf.tile(constant[None], [T, 1, 1])], axis=-1)
        kernel = tf.concat([cell.kernel, cell.recurrent_kernel], axis=0)  # Magenta's [F + E + H, 4H]
        hs, h, c = _block_lstm(tf.reverse(inputs, [0]) if reverse else inputs, h0, c0, kernel, cell.bias)
        hs = tf.reverse(hs, [0]) if reverse else hs
        return tf.reduce_sum(hs * weights[0]) + tf.reduce_sum((h + 2 * c) * weights[1])

    def loss_fused():
        hs, h, c = run_lstm(lstm, x, [h0, c0], constant=constant, reverse=reverse, training=xla_gates, block=True)
        return tf.reduce_sum(hs * weights[0]) + tf.reduce_sum((h + 2 * c) * weights[1])

    assert_same_values_and_gradients(loss_block_op, loss_fused, [x, constant, h0, c0], lstm.trainable_weights)


def test_block_lstm_step_and_one_hot_tokens_match_the_block_op():
    rng = np.random.default_rng(1)
    vocab = 7
    lstm = _random_lstm(rng, vocab)
    ids = tf.constant(rng.integers(0, vocab, size=(T, N)), tf.int32)
    h0, c0 = (tf.constant(rng.normal(size=(N, H)), tf.float32) for _ in range(2))
    kernel = tf.concat([lstm.cell.kernel, lstm.cell.recurrent_kernel], axis=0)
    expected, _, _ = _block_lstm(tf.one_hot(ids, vocab), h0, c0, kernel, lstm.cell.bias)
    # one-hot tokens: the kernel rows are looked up, never multiplied
    hs, _, _ = run_lstm(lstm, OneHotTokens(ids, tf.eye(vocab)), [h0, c0], block=True)
    np.testing.assert_allclose(hs, expected, rtol=1e-5, atol=1e-6)
    # the sampling loop's single step
    state, stepped = [h0, c0], []
    for t in range(T):
        h, state = lstm_step(lstm, tf.one_hot(ids[t], vocab), state, block=True)
        stepped.append(h)
    np.testing.assert_allclose(tf.stack(stepped), expected, rtol=1e-5, atol=1e-6)


def test_initial_state_columns_are_c_then_h_per_layer_as_magenta():
    stack = LstmStack((3, 2), cell="lstm_block")
    stack.build((None, 4, 5), (None, 4))
    embedding = tf.constant(np.random.default_rng(2).normal(size=(2, 4)), tf.float32)
    flat = stack.state_projection(embedding).numpy()  # Magenta: split into (c0, h0, c1, h1)
    (h0, c0), (h1, c1) = stack.initial_state(embedding)
    for value, columns in ((c0, slice(0, 3)), (h0, slice(3, 6)), (c1, slice(6, 8)), (h1, slice(8, 10))):
        np.testing.assert_array_equal(value, flat[:, columns])
    keras_stack = LstmStack((3,), cell="keras")
    keras_stack.build((None, 4, 5), (None, 4))
    (h, c), = keras_stack.initial_state(embedding)
    np.testing.assert_array_equal(h, keras_stack.state_projection(embedding).numpy()[:, :3])


def test_block_cell_starts_with_zero_bias_and_magentas_kernel_range():
    model = MusicVAE(vocab_size=90, seq_len=8, encoder_units=(16,), latent_dim=4, decoder_units=(12,))
    cell = model.decoder.lstms[0].cell
    np.testing.assert_array_equal(cell.bias.numpy(), 0.0)  # the forget bias is the op's fixed 1.0
    limit = np.sqrt(6.0 / ((90 + 4) + 12 + 4 * 12))  # Glorot-uniform over Magenta's [F + H, 4H] kernel
    assert np.abs(cell.kernel.numpy()).max() <= limit
    assert np.abs(cell.recurrent_kernel.numpy()).max() <= limit


def test_drum_model_encoder_reads_bits_decoder_reads_one_hot_tokens():
    model = MusicVAE(vocab_size=512, num_classes=9, drum_roll_input=True, seq_len=8, encoder_units=(8,),
                     latent_dim=4, decoder_units=(8,))
    assert model.step_features.mode == "roll" and model.step_features.depth == 10
    assert model.decoder_features.mode == "one_hot" and model.decoder_features.depth == 512
    assert model.encoder.layers[0].forward_layer.cell.kernel.shape == (10, 32)
    assert model.decoder.lstms[0].cell.kernel.shape == (512 + 4, 32)  # [one-hot of the previous token, z]
    ours = MusicVAE(vocab_size=512, num_classes=9, drum_roll_input=True, decoder_roll_input=True, seq_len=8,
                    encoder_units=(8,), latent_dim=4, decoder_units=(8,))
    assert ours.decoder.lstms[0].cell.kernel.shape == (10 + 4, 32)


def test_encode_inputs_equals_encode_on_tokens():
    model = MusicVAE(vocab_size=90, seq_len=8, encoder_units=(8,), latent_dim=4, decoder_units=(8,))
    tokens = np.random.default_rng(3).integers(0, 90, size=(2, 8))
    expected = model.encode({"tokens": tokens})
    actual = model.encode_inputs(tf.one_hot(tokens, 90))
    for e, a in zip(expected, actual):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="depth 12"):
        model.encode_inputs(tf.zeros([1, 8, 12]))

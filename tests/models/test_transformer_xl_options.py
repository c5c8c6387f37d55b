"""Transformer-XL options that make it the Pop Music Transformer's network (issue 17 part 2): off by default, and
each one doing what the original's code does (shared u/v, [sin, cos] sinusoids, ReLU after the FF's second layer,
its sliding generation memory)."""

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.models.transformer_xl import PositionwiseFeedForward, TransformerXL, relative_encoding

VOCAB, BAR = 40, 7
ORIGINAL = dict(pad_id=-1, eos_id=-1, shared_relative_bias=True, position_layout="concat", ff_output_relu=True,
                layer_norm_epsilon=1e-3, generation_memory="sliding")


def model(mem_len=6, **options):
    net = TransformerXL(vocab_size=VOCAB, bar_id=BAR, num_layers=2, d_model=16, num_heads=2, d_inner=24,
                        dropout=0.0, segment_len=8, mem_len=mem_len, **options)
    net.build()
    rng = np.random.default_rng(0)
    for variable in net.weights:  # spread, so that every weight changes the logits
        variable.assign(rng.normal(0.0, 0.5, variable.shape).astype(np.float32))
    return net


def bias_names(net):
    return sorted(v.path.split("/")[-1] for v in net.weights if v.path.split("/")[-1] in ("u", "v", "shared_u",
                                                                                          "shared_v"))


def test_defaults_are_ours():
    net = TransformerXL(vocab_size=VOCAB)
    config = net.get_config()
    assert (config["shared_relative_bias"], config["position_layout"], config["ff_output_relu"],
            config["layer_norm_epsilon"], config["generation_memory"]) == (False, "interleaved", False, 1e-5,
                                                                           "segments")


def test_shared_relative_bias_is_one_pair_for_all_layers():
    assert bias_names(model()) == ["u", "u", "v", "v"]
    shared = model(shared_relative_bias=True)
    assert bias_names(shared) == ["shared_u", "shared_v"]
    ids = np.array([BAR, 3, 9, 12, 5])
    before = shared.logits_full_recompute(ids).numpy()
    shared.shared_u.assign(shared.shared_u + 1.0)
    assert np.abs(shared.logits_full_recompute(ids).numpy() - before).max() > 1e-3


def test_concat_layout_is_sin_then_cos_of_the_same_frequencies():
    distances = np.array([5, 2, 0])
    d_model = 8
    inv_freq = 1.0 / 10000 ** (np.arange(0, d_model, 2) / d_model)
    angles = distances[:, None] * inv_freq[None]
    expected = np.concatenate([np.sin(angles), np.cos(angles)], -1)
    np.testing.assert_allclose(relative_encoding(tf.constant(distances), d_model, layout="concat").numpy(),
                               expected, atol=1e-6)
    interleaved = relative_encoding(tf.constant(distances), d_model).numpy()
    np.testing.assert_allclose(np.sort(interleaved, -1), np.sort(expected, -1), atol=1e-6)  # same values,
    assert np.abs(interleaved - expected).max() > 0.1  # another order
    with pytest.raises(ValueError, match="position layout"):
        relative_encoding(tf.constant(distances), d_model, layout="spiral")


def test_output_relu_follows_the_feed_forwards_second_layer():
    layer = PositionwiseFeedForward(4, 6, dropout=0.0, output_relu=True, layer_norm_epsilon=1e-3)
    layer.build()
    rng = np.random.default_rng(1)
    for variable in layer.weights:
        variable.assign(rng.normal(0.0, 1.0, variable.shape).astype(np.float32))
    h = rng.normal(size=(3, 4)).astype(np.float32)
    w1, b1, w2, b2, gamma, beta = (v.numpy() for v in layer.weights)
    x = h + np.maximum(np.maximum(h @ w1 + b1, 0) @ w2 + b2, 0)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-3) * gamma + beta
    np.testing.assert_allclose(layer(tf.constant(h)).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("prompt_len", [3, 9])  # shorter and longer than the memory
def test_sliding_steps_equal_one_token_segments_over_the_slid_memory(prompt_len):
    """The cached sliding path == the plain segment path fed the memory the original's generate keeps: M zero
    states at first (attended), the prompt in one pass, then one state in and one out per token."""
    net = model(mem_len=6, **ORIGINAL)
    rng = np.random.default_rng(2)
    prompt, continuation = rng.integers(0, VOCAB, prompt_len), rng.integers(0, VOCAB, 5)
    prompt_logits, step_logits = net.logits_sliding(prompt, continuation)

    memory = [tf.zeros([1, 6, 16])] * 2
    expected, memory, _ = net.segment_forward(tf.constant(prompt[None], tf.int32), memory, tf.constant(6))
    np.testing.assert_allclose(prompt_logits.numpy(), expected[0].numpy(), atol=1e-5)
    for token, got in zip(continuation, step_logits.numpy()):
        logits, memory, _ = net.segment_forward(tf.constant([[token]], tf.int32), memory, tf.constant(6))
        np.testing.assert_allclose(got, logits[0, 0].numpy(), atol=1e-5)
    # the zero memory is attended to: masking it instead changes the prompt's logits
    masked, _, _ = net.segment_forward(tf.constant(prompt[None], tf.int32), [tf.zeros([1, 6, 16])] * 2,
                                       tf.constant(0))
    assert np.abs(masked[0].numpy() - prompt_logits.numpy()).max() > 1e-3


def test_greedy_sliding_generation_follows_its_own_logits_and_ends_on_a_kept_bar():
    net = model(**ORIGINAL)
    bias = np.zeros(VOCAB, np.float32)
    bias[BAR] = 4.0  # bars come often enough to end the run
    net.output_bias.assign(bias)
    prompt = np.array([BAR, 3, 11, 20, BAR])
    tokens = net.continue_tokens(prompt, num_bars=2, temperature=0.0, max_tokens=60)[0]
    assert list(tokens[:5]) == list(prompt)
    generated = tokens[5:]
    assert generated[-1] == BAR and np.sum(generated == BAR) == 3  # two bars added, then the closing Bar kept
    _, steps = net.logits_sliding(prompt, generated[:-1])
    first, _ = net.logits_sliding(prompt, [])
    np.testing.assert_array_equal(np.argmax(np.concatenate([first[-1:], steps]), -1), generated)
    capped = net.continue_tokens(prompt, num_bars=2, temperature=0.0, max_tokens=len(prompt) + 3)[0]
    np.testing.assert_array_equal(capped, tokens[:len(prompt) + 3])


def test_options_round_trip_through_the_config():
    net = model(**ORIGINAL)
    clone = TransformerXL.from_config(net.get_config())
    clone.build()
    clone.set_weights(net.get_weights())
    ids = np.array([BAR, 1, 2, 3, 4, BAR, 5])
    np.testing.assert_allclose(clone.logits_full_recompute(ids).numpy(), net.logits_full_recompute(ids).numpy(),
                               atol=1e-6)
    with pytest.raises(ValueError, match="generation_memory"):
        TransformerXL(vocab_size=VOCAB, generation_memory="forever")

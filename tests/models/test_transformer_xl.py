"""Transformer-XL on REMI: relative attention, cached generation == full recompute across segments, bar-exact
stopping, prompt continuation, config round trip, training on whole pieces, and a tiny end-to-end run."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from note_seq import testing_lib
from note_seq.protobuf import music_pb2

from musicgen_tf.models.transformer_xl import TransformerXL, rel_shift
from musicgen_tf.music.remi import BAR, EOS_ID, PAD_ID, RemiConverter

CONVERTER = RemiConverter()
BAR_ID = CONVERTER.vocab.token_to_id(BAR)


def tiny_model(segment_len=8, mem_len=8, dropout=0.0, **kwargs):
    model = TransformerXL(vocab_size=CONVERTER.vocab_size, pad_id=PAD_ID, eos_id=EOS_ID, bar_id=BAR_ID,
                          num_layers=2, d_model=32, num_heads=2, d_inner=64, dropout=dropout,
                          segment_len=segment_len, mem_len=mem_len, **kwargs)
    model.build()
    return model


def piece(seed, bars=4):
    """A random 4/4 piano piece as REMI ids ending with EOS."""
    rng = np.random.default_rng(seed)
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)
    ns.tempos.add(qpm=120.0)
    ns.time_signatures.add(numerator=4, denominator=4)
    notes = []
    for step in range(bars * 8):  # eighth notes, 0.25 s at 120 qpm
        pitch = int(rng.choice([60, 62, 64, 65, 67, 69, 71, 72]))
        notes.append((pitch, 80, step * 0.25, step * 0.25 + 0.25))
    testing_lib.add_track_to_sequence(ns, 0, notes)
    return CONVERTER.encode_ids(ns)


def forced_bars_model(**kwargs):
    """A model that never samples EOS and often samples Bar, so bar counting decides where generation ends."""
    model = tiny_model(**kwargs)
    bias = np.zeros(CONVERTER.vocab_size, np.float32)
    bias[EOS_ID], bias[BAR_ID] = -1e4, 3.0
    model.output_bias.assign(bias)
    return model


def test_rel_shift_puts_each_distance_under_its_key():
    q, k = 3, 7  # queries at slots 4..6 of 7 keys
    distances = np.arange(k - 1, -1, -1)  # column c holds distance K-1-c
    x = np.broadcast_to(distances, (1, 1, q, k)).astype(np.float32)
    shifted = rel_shift(tf.constant(x)).numpy()[0, 0]
    for i in range(q):
        for j in range(k - q + i + 1):  # visible keys
            assert shifted[i, j] == (k - q + i) - j


@pytest.mark.parametrize("segment_len,mem_len", [(8, 8), (8, 5), (6, 10)])
def test_cached_logits_equal_full_recompute_across_segments(segment_len, mem_len):
    model = tiny_model(segment_len, mem_len)
    ids = piece(0)[:27]  # > 3 segments
    full = model.logits_full_recompute(ids).numpy()
    cached = model.logits_cached(ids).numpy()
    np.testing.assert_allclose(cached, full, atol=1e-4, rtol=1e-4)
    # Memory matters: the same last segment without its history gives other logits.
    start = (len(ids) - 1) // segment_len * segment_len
    alone = model.logits_full_recompute(ids[start:]).numpy()
    assert np.abs(alone - full[start:]).max() > 1e-3


def test_call_accepts_a_batch_dict_and_masks_nothing_real():
    model = tiny_model()
    tokens = np.stack([piece(0)[:20], np.pad(piece(1)[:12], (0, 8))])
    logits = model({"tokens": tokens}, training=False).numpy()
    assert logits.shape == (2, 20, CONVERTER.vocab_size)
    # Trailing PAD never changes the logits of the real tokens before it (causal).
    np.testing.assert_allclose(logits[1, :12], model.logits_full_recompute(tokens[1, :12]).numpy(), atol=1e-5)


def test_generate_stops_after_the_asked_number_of_bars_and_is_reproducible():
    model = forced_bars_model()
    out = model.generate(5, temperature=1.0, top_k=8, seed=[3, 4], max_tokens=400, num=3)
    assert out.dtype == np.int64 and out.shape[0] == 3
    for row in out:
        real = row[row != PAD_ID]
        assert real[0] == BAR_ID and real[-1] == EOS_ID
        assert CONVERTER.count_bars(real) == 5
    np.testing.assert_array_equal(out, model.generate(5, top_k=8, seed=[3, 4], max_tokens=400, num=3))
    assert not np.array_equal(out, model.generate(5, top_k=8, seed=[3, 5], max_tokens=400, num=3))
    capped = model.generate(50, seed=[1, 1], max_tokens=30)
    assert capped.shape == (1, 30) and EOS_ID not in capped  # the token cap ends it
    greedy = model.generate(3, temperature=0.0, seed=[0, 0], max_tokens=200)
    np.testing.assert_array_equal(greedy, model.generate(3, temperature=0.0, seed=[9, 9], max_tokens=200))


def test_continuation_keeps_the_prompt_and_adds_bars():
    model = forced_bars_model()
    prompt = CONVERTER.first_bars(piece(2, bars=4), 2)
    assert CONVERTER.count_bars(prompt) == 2
    out = model.continue_tokens(prompt, num_bars=3, seed=[5, 6], max_tokens=500)[0]
    np.testing.assert_array_equal(out[:len(prompt)], prompt)
    real = out[out != PAD_ID]
    assert CONVERTER.count_bars(real) == 5 and real[-1] == EOS_ID
    assert CONVERTER.from_example({"tokens": out}).notes  # decodes to music


def test_sample_interface_for_the_sample_logger():
    model = forced_bars_model(sample_bars=2, sample_max_tokens=64)
    out = model.sample(2, temperature=1.0, seed=[1, 2])
    assert out.shape[0] == 2
    assert all(CONVERTER.count_bars(row) <= 2 for row in out)


def test_get_config_round_trip():
    model = tiny_model(segment_len=6, mem_len=4, dropout=0.1)
    clone = TransformerXL.from_config(model.get_config())
    clone.build()
    clone.set_weights(model.get_weights())
    assert clone.get_config() == model.get_config()
    ids = piece(3)[:15]
    np.testing.assert_allclose(clone.logits_full_recompute(ids), model.logits_full_recompute(ids), atol=1e-6)
    names = {v.path.split("/")[1] for v in model.weights if "/" in v.path}
    assert {"embedding", "block_0", "block_1"} <= names


def test_training_on_whole_pieces_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = tiny_model(segment_len=16, mem_len=16, dropout=0.0)
    pieces = [piece(seed, bars=3) for seed in range(4)]
    length = max(len(p) for p in pieces)
    assert length > 2 * 16  # several segments per piece
    tokens = np.stack([np.pad(p, (0, length - len(p))) for p in pieces])
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    data = tf.data.Dataset.from_tensor_slices({"tokens": tokens}).batch(2).repeat()
    history = model.fit(data, epochs=4, steps_per_epoch=10, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0] - 1.0, losses
    assert 0.0 <= history.history["accuracy"][-1] <= 1.0
    evaluated = model.evaluate(tf.data.Dataset.from_tensor_slices({"tokens": tokens}).batch(2), verbose=0,
                               return_dict=True)
    assert evaluated["loss"] < losses[0]


def test_gradients_match_one_tape_over_all_segments():
    """Per-segment tapes (what train_step does) == one tape over the whole piece (memories are stop-gradient)."""
    model = tiny_model(segment_len=8, mem_len=8)
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    tokens = tf.constant(piece(4)[None, :30])
    sums, nll, _, counted = model._walk({"tokens": tokens}, training=True)
    with tf.GradientTape() as tape:
        logits = model(tokens[:, :-1], training=True)
        total = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tokens[:, 1:], logits=logits))
    expected = tape.gradient(total, model.trainable_variables)
    np.testing.assert_allclose(float(nll), float(total), rtol=1e-5)
    assert float(counted) == 29
    for got, want in zip(sums, expected):
        np.testing.assert_allclose(np.asarray(got), np.asarray(tf.convert_to_tensor(want)), atol=1e-5)


@pytest.mark.slow
def test_end_to_end_preprocess_train_generate_continue_evaluate(tmp_path, capsys):
    import json

    from musicgen_tf import txl_generation
    from musicgen_tf.music.representations import get_converter
    from musicgen_tf.preprocessing.pipeline import run_preprocess
    from musicgen_tf.preprocessing.readers import get_reader
    from musicgen_tf.train.trainer import TrainOptions, train
    from tests import fixtures

    midi = tmp_path / "midi"
    rng = np.random.default_rng(0)
    for index in range(6):
        pitches = list(rng.choice([60, 62, 64, 65, 67, 69, 71, 72], size=16))
        fixtures.write_midi(midi / f"song_{index}.mid", fixtures.melody_notes(8, pitches=pitches))
    records = tmp_path / "records"
    run_preprocess(get_reader("midi-dir"), get_converter("remi"), str(records), input_dir=str(midi), num_shards=1)
    run_dir = tmp_path / "run"
    history = train(TrainOptions(preset="remi_txl_pop", data=str(records), run_dir=str(run_dir), tiny=True,
                                 epochs=1, steps_per_epoch=3, batch_size=2, verbose=0))
    assert np.isfinite(history.history["loss"][-1])
    assert list((run_dir / "samples").rglob("*.mid"))  # the SampleLogger used model.sample

    paths = txl_generation.generate_remi(str(run_dir), str(tmp_path / "gen"), num=2, bars=4, seed=1,
                                         max_tokens=200)
    assert len(paths) == 2 and all(os.path.isfile(p[k]) for p in paths for k in ("mid", "wav", "png"))
    paths = txl_generation.continue_remi(str(run_dir), str(midi / "song_0.mid"), str(tmp_path / "cont"),
                                         prompt_bars=2, bars=2, seed=1, max_tokens=300)
    assert [Path(p["mid"]).stem for p in paths] == ["prompt-00", "continuation-00"]

    result = txl_generation.evaluate_command(str(tmp_path / "gen"), json_out=True)
    printed = json.loads(capsys.readouterr().out)
    assert set(printed["mean"]) >= {"H4", "GS", "H1", "CPI"} and len(printed["files"]) == len(result["files"])

"""Beam search on the Transformer-XL cache: one beam is greedy decoding, wider beams never score worse, the bar
rule and prompts hold."""

import numpy as np
import pytest

from musicgen_tf.models import txl_beam
from musicgen_tf.music.remi import EOS_ID, PAD_ID
from tests.models.test_transformer_xl import BAR_ID, CONVERTER, forced_bars_model, piece, tiny_model


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(11)
    return tiny_model(segment_len=6, mem_len=6)  # 14 new tokens cross two segment boundaries


def test_one_beam_is_greedy_decoding(model):
    greedy = model.generate(100, temperature=0.0, max_tokens=15)
    beam, scores = txl_beam.beam_search(model, [BAR_ID], beams=1, max_bars=100, max_tokens=15)
    np.testing.assert_array_equal(beam, greedy)
    assert scores[0] == pytest.approx(txl_beam.sequence_log_prob(model, greedy[0], 1, 100), abs=1e-3)


@pytest.mark.parametrize("beams", [2, 4])
def test_wider_beams_find_sequences_at_least_as_likely_as_greedy(model, beams):
    greedy = model.generate(100, temperature=0.0, max_tokens=15)[0]
    greedy_score = txl_beam.sequence_log_prob(model, greedy, 1, 100)
    out, scores = txl_beam.beam_search(model, [BAR_ID], beams=beams, max_bars=100, max_tokens=15)
    assert out.shape[0] == beams and np.all(np.diff(scores) <= 1e-6)  # best first
    best = txl_beam.sequence_log_prob(model, out[0], 1, 100)
    assert best == pytest.approx(float(scores[0]), abs=1e-3)  # the search's own score is the sequence's
    assert best >= greedy_score - 1e-4
    # every returned beam is a distinct sequence with the score the search reports
    assert len({tuple(row) for row in out}) == beams
    for row, score in zip(out, scores):
        assert txl_beam.sequence_log_prob(model, row, 1, 100) == pytest.approx(float(score), abs=1e-3)


def test_beam_search_respects_the_bar_count_and_keeps_the_prompt():
    model = forced_bars_model()
    out = txl_beam.generate(model, 3, beams=3, max_tokens=300, num=2)
    assert out.shape[0] == 2
    for row in out:
        real = row[row != PAD_ID]
        assert real[0] == BAR_ID and real[-1] == EOS_ID and CONVERTER.count_bars(real) == 3
    prompt = CONVERTER.first_bars(piece(2, bars=4), 2)
    cont = txl_beam.continue_tokens(model, prompt, 2, beams=2, max_tokens=300)[0]
    np.testing.assert_array_equal(cont[:len(prompt)], prompt)
    assert CONVERTER.count_bars(cont[cont != PAD_ID]) == 4
    with pytest.raises(ValueError, match="at most --beam"):
        txl_beam.generate(model, 2, beams=2, num=3)

import numpy as np
import pytest

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.converter import Waveform
from musicgen_tf.music.waveform import WaveformConverter


def _sine(seconds, rate, frequency=220.0):
    t = np.arange(int(seconds * rate)) / rate
    return Waveform((0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate)


def test_seed_defaults_resample_to_3khz_and_90001_samples():
    converter = WaveformConverter()
    examples = converter.to_examples(_sine(31.0, 22050))
    assert len(examples) == 1 and examples[0]["audio"].shape == (90001,)
    assert examples[0]["audio"].dtype == np.float32
    # a 220 Hz sine stays a 220 Hz sine after resampling
    spectrum = np.abs(np.fft.rfft(examples[0]["audio"]))
    assert np.argmax(spectrum) * 3000 / 90001 == pytest.approx(220.0, abs=0.1)


def test_several_frames_and_round_trip():
    converter = WaveformConverter(sample_rate=8000, frame_length=4000, hop_length=2000, max_frames_per_clip=10)
    examples = converter.to_examples(_sine(2.0, 8000))
    assert len(examples) == 7
    back = converter.from_example(examples[1])
    assert back.sample_rate == 8000
    np.testing.assert_array_equal(back.samples, examples[1]["audio"])
    assert WaveformConverter(**converter.params()).params() == converter.params()


def test_short_clip_is_padded_and_too_short_is_skipped():
    converter = WaveformConverter(sample_rate=1000, frame_length=1000)
    (example,) = converter.to_examples(_sine(0.7, 1000))
    assert np.all(example["audio"][700:] == 0)
    with pytest.raises(SkipInput, match="too short"):
        converter.to_examples(_sine(0.3, 1000))


def test_silent_and_nan_audio_are_skipped():
    converter = WaveformConverter(sample_rate=1000, frame_length=1000)
    with pytest.raises(SkipInput, match="silent"):
        converter.to_examples(Waveform(np.zeros(2000, np.float32), 1000))
    broken = _sine(2.0, 1000)
    broken.samples[5] = np.nan
    with pytest.raises(SkipInput, match="NaN"):
        converter.to_examples(broken)

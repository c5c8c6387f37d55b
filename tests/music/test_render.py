"""Rendering: MIDI that our decoder reads back (chords included), WAVs of the right length, plots that show notes."""

import numpy as np
import pytest
import soundfile
from note_seq.protobuf import music_pb2
from PIL import Image

from musicgen_tf.music import render
from musicgen_tf.music.midi_io import midi_file_to_note_sequence

SR = 16000
CHORD_SYMBOL = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
MELODY = [60, 62, 64, 65, 67, 65, 64, 62]
CHORDS = [("C", [48, 52, 55]), ("Am", [45, 48, 52]), ("F", [41, 45, 48]), ("G7", [43, 47, 50, 53])]
DRUM_BAR = [(36, 0), (42, 0), (42, 2), (38, 4), (42, 4), (42, 6), (36, 8), (42, 8), (38, 12), (42, 14)]


def _sequence(qpm=120.0):
    ns = music_pb2.NoteSequence(ticks_per_quarter=480)  # every time below is a whole tick
    ns.tempos.add(time=0.0, qpm=qpm)
    ns.time_signatures.add(time=0.0, numerator=4, denominator=4)
    return ns


def melody_ns():
    """Eight quarter notes at 120 qpm (4 s), velocities rising 50..106."""
    ns = _sequence()
    for i, pitch in enumerate(MELODY):
        ns.notes.add(pitch=pitch, velocity=50 + 8 * i, start_time=0.5 * i, end_time=0.5 * i + 0.375)
    ns.total_time = 4.0
    return ns


def full_ns():
    """Melody + one chord per bar (notes on instrument 1 and CHORD_SYMBOL annotations) + a drum track; 8 s."""
    ns = melody_ns()
    for i, pitch in enumerate(MELODY):
        ns.notes.add(pitch=pitch + 12, velocity=70, start_time=4.0 + 0.5 * i, end_time=4.5 + 0.5 * i)
    for bar, (figure, pitches) in enumerate(CHORDS):
        ns.text_annotations.add(time=2.0 * bar, text=figure, annotation_type=CHORD_SYMBOL)
        for pitch in pitches:
            ns.notes.add(pitch=pitch, velocity=60, start_time=2.0 * bar, end_time=2.0 * bar + 2.0,
                         instrument=1, program=48)
    ns.notes.extend(drum_ns(bars=4).notes)
    ns.total_time = 8.0
    return ns


def drum_ns(bars=1):
    ns = _sequence()
    for bar in range(bars):
        for pitch, step in DRUM_BAR:
            start = (16 * bar + step) * 0.125
            ns.notes.add(pitch=pitch, velocity=100, start_time=start, end_time=start + 0.0625, is_drum=True,
                         instrument=9, program=0)
    ns.total_time = 2.0 * bars
    return ns


def _notes(ns):
    return sorted((round(n.start_time, 6), round(n.end_time, 6), n.pitch, n.velocity, n.is_drum, n.program)
                  for n in ns.notes)


def _chords(ns):
    return [(round(a.time, 6), a.text) for a in sorted(ns.text_annotations, key=lambda a: a.time)]


# ---------------------------------------------------------------------------------------------------------- MIDI


def test_midi_round_trip_keeps_notes_drums_and_chord_markers(tmp_path):
    ns = full_ns()
    path = render.write_midi(ns, tmp_path / "sub" / "song.mid")
    back = midi_file_to_note_sequence(path)
    assert _notes(back) == _notes(ns)
    assert _chords(back) == [(2.0 * bar, figure) for bar, (figure, _) in enumerate(CHORDS)]
    assert [(t.time, t.qpm) for t in back.tempos] == [(0.0, 120.0)]


def test_chord_markers_follow_tempo_changes(tmp_path):
    ns = melody_ns()
    ns.tempos.add(time=2.0, qpm=60.0)  # from 2 s on a beat lasts 1 s
    ns.text_annotations.add(time=3.0, text="Dm", annotation_type=CHORD_SYMBOL)
    ns.text_annotations.add(time=0.0, text="C", annotation_type=CHORD_SYMBOL)
    ns.text_annotations.add(time=1.0, text="just a comment")  # not a chord: not written
    back = midi_file_to_note_sequence(render.write_midi(ns, tmp_path / "tempo.mid"))
    assert _chords(back) == [(0.0, "C"), (3.0, "Dm")]
    assert _notes(back) == _notes(ns)


def test_midi_without_chords_has_no_markers(tmp_path):
    back = midi_file_to_note_sequence(render.write_midi(drum_ns(), tmp_path / "drums.mid"))
    assert _notes(back) == _notes(drum_ns()) and not back.text_annotations


# --------------------------------------------------------------------------------------------------------- audio


def _expected_length(seconds):
    return round((seconds + render.TAIL_SECONDS) * SR)


def test_sine_synth_melody_has_length_peak_and_sound_where_the_notes_are():
    audio = render.synthesize(melody_ns(), SR, use_fluidsynth=False)
    assert audio.synth == "sine" and audio.sample_rate == SR
    assert audio.samples.dtype == np.float32 and audio.samples.shape == (_expected_length(4.0),)
    assert np.abs(audio.samples).max() == pytest.approx(render.PEAK, abs=1e-6)
    notes_rms = np.sqrt(np.mean(audio.samples[: 4 * SR] ** 2))
    tail_rms = np.sqrt(np.mean(audio.samples[int(4.2 * SR):] ** 2))
    assert notes_rms > 0.1 and tail_rms < 1e-3


def test_sine_synth_makes_drums_audible_and_deterministic():
    first = render.synthesize(drum_ns(), SR, use_fluidsynth=False).samples
    second = render.synthesize(drum_ns(), SR, use_fluidsynth=False).samples
    np.testing.assert_array_equal(first, second)
    for pitch, step in DRUM_BAR:  # every hit starts a burst
        start = int(step * 0.125 * SR)
        assert np.abs(first[start:start + SR // 50]).max() > 0.05, pitch
    assert np.abs(first[int(0.9 * SR):int(1.0 * SR)]).max() < 1e-3  # step 8 is at 1.0 s; nothing just before


@pytest.mark.parametrize("use_fluidsynth", [False, None])
def test_empty_sequence_is_silence_not_nan(use_fluidsynth):
    audio = render.synthesize(music_pb2.NoteSequence(), SR, use_fluidsynth=use_fluidsynth)
    assert audio.samples.shape == (_expected_length(0.0),) and not audio.samples.any()


def test_write_wav_from_sequence_is_16_bit_with_the_right_duration(tmp_path):
    path = render.write_wav(melody_ns(), tmp_path / "melody.wav", SR, use_fluidsynth=False)
    info = soundfile.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert info.frames == _expected_length(4.0)
    samples, _ = soundfile.read(path)
    assert 0.5 < np.abs(samples).max() <= render.PEAK + 1e-3


def test_write_wav_normalises_loud_samples_and_keeps_silence_silent(tmp_path):
    loud = 5.0 * np.sin(np.linspace(0, 200 * np.pi, 8000))
    samples, rate = soundfile.read(render.write_wav(loud, tmp_path / "loud.wav", 8000))
    assert rate == 8000 and np.abs(samples).max() == pytest.approx(render.PEAK, abs=1e-3)
    samples, _ = soundfile.read(render.write_wav(np.zeros(800), tmp_path / "zeros.wav", 8000))
    assert len(samples) == 800 and not samples.any()
    samples, _ = soundfile.read(render.write_wav(music_pb2.NoteSequence(), tmp_path / "empty.wav", SR))
    assert len(samples) == _expected_length(0.0) and not samples.any()


def test_write_wav_refuses_a_different_rate_for_audio(tmp_path):
    audio = render.synthesize(melody_ns(), SR, use_fluidsynth=False)
    with pytest.raises(ValueError, match="16000 Hz"):
        render.write_wav(audio, tmp_path / "x.wav", sample_rate=22050)


def test_requiring_fluidsynth_without_it_says_what_to_install(monkeypatch):
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    assert not render.fluidsynth_available()
    assert render.synthesize(melody_ns(), SR).synth == "sine"  # auto falls back
    with pytest.raises(FileNotFoundError, match="apt-get install fluidsynth"):
        render.synthesize(melody_ns(), SR, use_fluidsynth=True)


def test_missing_soundfont_override_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    with pytest.raises(FileNotFoundError, match="MUSICGEN_SOUNDFONT"):
        render.find_soundfont()


@pytest.mark.skipif(not render.fluidsynth_available(),
                    reason="needs the `fluidsynth` program (apt-get install fluidsynth) and a GM soundfont")
def test_fluidsynth_renders_melody_chords_and_drums(tmp_path):
    audio = render.synthesize(full_ns(), SR)
    assert audio.synth == "fluidsynth" and audio.samples.shape == (_expected_length(8.0),)
    assert np.abs(audio.samples).max() == pytest.approx(render.PEAK, abs=1e-6)
    drums = render.synthesize(drum_ns(), SR, use_fluidsynth=True).samples
    assert np.sqrt(np.mean(drums[: 2 * SR] ** 2)) > 0.01  # GM drum kit on channel 10 is heard
    info = soundfile.info(render.write_wav(audio, tmp_path / "full.wav"))
    assert (info.samplerate, info.frames) == (SR, _expected_length(8.0))


# ------------------------------------------------------------------------------------------------------- figures


def _saturated_pixels(image):
    """Pixels with clear colour (notes, colour bar), not white background, black text or gray grid lines."""
    image = np.asarray(image, np.int16)[..., :3]
    return int(((image.max(axis=-1) - image.min(axis=-1)) > 60).sum())


def test_piano_roll_png_has_the_size_and_shows_the_notes(tmp_path):
    path = render.piano_roll_png(full_ns(), tmp_path / "plots" / "roll.png", title="full")
    empty = render.piano_roll_png(music_pb2.NoteSequence(), tmp_path / "empty.png")
    with Image.open(path) as image, Image.open(empty) as blank:
        assert image.size == blank.size == (1000, 400)
        assert _saturated_pixels(image.convert("RGB")) > _saturated_pixels(blank.convert("RGB")) + 5000


def test_piano_roll_puts_drums_on_their_own_labelled_lane():
    figure = render.piano_roll_figure(full_ns())
    pitch_ax, drum_ax = figure.axes[:2]
    labels = [label.get_text() for label in drum_ax.get_yticklabels()]
    assert labels == ["Bass Drum 1 (36)", "Acoustic Snare (38)", "Closed Hi Hat (42)"]
    assert len(drum_ax.patches) == 4 * len(DRUM_BAR)
    assert len(pitch_ax.patches) == len([n for n in full_ns().notes if not n.is_drum])
    assert [t.get_text() for t in pitch_ax.texts] == [figure for figure, _ in CHORDS]
    assert len(render.piano_roll_figure(melody_ns()).axes) == 2  # pitch axes + colour bar, no drum lane


def test_piano_roll_image_for_tensorboard():
    image = render.piano_roll_image(melody_ns())
    assert image.dtype == np.uint8 and image.shape == (400, 1000, 3)
    assert _saturated_pixels(image) > _saturated_pixels(render.piano_roll_image(music_pb2.NoteSequence()))


def test_bar_times_follow_tempo_and_time_signature_changes():
    assert render.bar_times(melody_ns(), 8.0) == pytest.approx([0.0, 2.0, 4.0, 6.0])
    ns = _sequence(qpm=120.0)
    ns.time_signatures.add(time=4.0, numerator=3, denominator=4)  # 3/4 from 4 s: bars of 1.5 s
    ns.tempos.add(time=7.0, qpm=60.0)  # then bars of 3 s
    assert render.bar_times(ns, 12.0) == pytest.approx([0.0, 2.0, 4.0, 5.5, 7.0, 10.0])
    assert render.bar_times(music_pb2.NoteSequence(), 5.0) == pytest.approx([0.0, 2.0, 4.0])  # 120 qpm 4/4


@pytest.mark.parametrize("kind", ["waveform", "spectrogram"])
def test_audio_plots_as_png_and_array(tmp_path, kind):
    audio = render.synthesize(melody_ns(), SR, use_fluidsynth=False)
    png = getattr(render, f"{kind}_png")(audio.samples, SR, tmp_path / f"{kind}.png")
    with Image.open(png) as image:
        assert image.size == (1000, 300)
    array = getattr(render, f"{kind}_image")(audio, SR)
    assert array.dtype == np.uint8 and array.shape == (300, 1000, 3)
    assert _saturated_pixels(array) > 5000
    for silent in (np.zeros(SR, np.float32), np.zeros(0, np.float32)):  # no crash, still an image
        assert getattr(render, f"{kind}_image")(silent, SR).shape == (300, 1000, 3)


def test_render_all_writes_mid_wav_png(tmp_path):
    paths = render.render_all(full_ns(), tmp_path / "samples", "sample_0", use_fluidsynth=False)
    assert sorted(paths) == ["mid", "png", "wav"]
    for kind, path in paths.items():
        assert path.endswith(f"sample_0.{kind}")
    assert _notes(midi_file_to_note_sequence(paths["mid"])) == _notes(full_ns())
    assert soundfile.info(paths["wav"]).frames == _expected_length(8.0)
    with Image.open(paths["png"]) as image:
        assert image.size == (1000, 400)


def test_musicxml_sheet_for_a_melody(tmp_path):
    import music21

    ns = music_pb2.NoteSequence()
    ns.tempos.add(qpm=120)
    for index, pitch in enumerate([60, 62, 64, 65]):
        ns.notes.add(pitch=pitch, velocity=80, start_time=index * 0.5, end_time=index * 0.5 + 0.5)
    path = render.write_musicxml(ns, tmp_path / "melody.musicxml")
    score = music21.converter.parse(path)
    assert [n.pitch.midi for n in score.flatten().notes] == [60, 62, 64, 65]

"""What people want to see and hear from a NoteSequence or a waveform: MIDI, WAV, piano roll and audio plots.

Shared by `musicgen generate`, the TensorBoard callbacks and the web studio, so every function works headless and
thread-safe: figures are `matplotlib.figure.Figure` objects on their own Agg canvas, never pyplot's global state
(so no display and no `matplotlib.use` is needed, and a caller's backend is left alone).

- `write_midi(ns, path)`: note_seq's writer, plus CHORD_SYMBOL annotations as MIDI marker events (our decoder in
  `midi_io` reads markers back as text annotations, so chords survive a round trip).
- `synthesize(ns, sample_rate) -> Audio(samples float32 [n], sample_rate, synth)`: FluidSynth with a General MIDI
  soundfont when the `fluidsynth` program is installed, else a sine synth with noise-burst drums.
- `write_wav`, `piano_roll_png` / `piano_roll_image`, `waveform_png` / `waveform_image`,
  `spectrogram_png` / `spectrogram_image`, and `render_all` (`<stem>.mid`, `<stem>.wav`, `<stem>.png` at once).
  The `*_image` variants return uint8 [height, width, 3] arrays for `tf.summary.image` (add a batch axis).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import NamedTuple

import matplotlib.cm
import matplotlib.colors
import mido
import note_seq
import numpy as np
import pretty_midi
import soundfile
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from note_seq.protobuf import music_pb2

CHORD_SYMBOL = music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
DEFAULT_SAMPLE_RATE = 16000
TAIL_SECONDS = 1.0  # audio runs this long past the last note, for the release/reverb of the last notes
PEAK = 0.9  # synthesized and written audio peaks here, leaving headroom below full scale
SOUNDFONT_ENV = "MUSICGEN_SOUNDFONT"
# Searched in order after $MUSICGEN_SOUNDFONT; pretty_midi ships the small TimGM6mb font, so only the fluidsynth
# program itself (Debian: `apt-get install fluidsynth fluid-soundfont-gm`) is needed for GM sound.
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2"))
FIGSIZE, DPI = (10.0, 4.0), 100  # piano roll: 1000 x 400 pixels
AUDIO_FIGSIZE = (10.0, 3.0)  # waveform and spectrogram: 1000 x 300 pixels
KICK_PITCHES = frozenset({35, 36})
CYMBAL_PITCHES = frozenset({42, 44, 46, 49, 51, 52, 53, 55, 57, 59})


class Audio(NamedTuple):
    """A mono waveform: `samples` float32 [n] in [-1, 1]; `synth` says which synthesizer made it.

    `synth` is "fluidsynth" (General MIDI soundfont) or "sine" (pretty_midi's sine synth, noise-burst drums).
    """

    samples: np.ndarray
    sample_rate: int
    synth: str


# ---------------------------------------------------------------------------------------------------------- MIDI


def write_midi(ns: music_pb2.NoteSequence, path) -> str:
    """Write `ns` as a standard MIDI file, with CHORD_SYMBOL annotations as marker meta events; return the path.

    note_seq's writer drops text annotations, so the markers are added afterwards with mido on the first track
    (the tempo/meta track), at ticks from the file's own tempo map.
    """
    path = os.fspath(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pm = note_seq.note_sequence_to_pretty_midi(ns)
    pm.write(path)
    chords = sorted((a.time, a.text) for a in ns.text_annotations if a.annotation_type == CHORD_SYMBOL)
    if chords:
        midi = mido.MidiFile(path)
        track = midi.tracks[0]
        events, tick = [], 0
        for message in track:  # delta times -> absolute ticks
            tick += message.time
            if message.type != "end_of_track":
                events.append((tick, message))
        events += [(pm.time_to_tick(time), mido.MetaMessage("marker", text=text)) for time, text in chords]
        events.sort(key=lambda event: event[0])  # stable: markers follow meta events at the same tick
        track.clear()
        previous = 0
        for tick, message in events:
            track.append(message.copy(time=tick - previous))
            previous = tick
        track.append(mido.MetaMessage("end_of_track", time=0))
        midi.save(path)
    return path


# --------------------------------------------------------------------------------------------------------- audio


def find_soundfont() -> str | None:
    """The General MIDI soundfont to use: $MUSICGEN_SOUNDFONT, else the first of `SOUNDFONTS` that exists."""
    override = os.environ.get(SOUNDFONT_ENV)
    if override:
        if not os.path.isfile(override):
            raise FileNotFoundError(f"${SOUNDFONT_ENV} = {override!r} is not a file")
        return override
    return next((path for path in SOUNDFONTS if os.path.isfile(path)), None)


def fluidsynth_available() -> bool:
    """True when the `fluidsynth` program and a soundfont are both present."""
    return shutil.which("fluidsynth") is not None and find_soundfont() is not None


def _end_time(ns: music_pb2.NoteSequence) -> float:
    return max([ns.total_time] + [note.end_time for note in ns.notes])


def synthesize(ns: music_pb2.NoteSequence, sample_rate: int = DEFAULT_SAMPLE_RATE,
               use_fluidsynth: bool | None = None) -> Audio:
    """Render `ns` to mono audio of exactly `round((end + TAIL_SECONDS) * sample_rate)` samples, peak `PEAK`.

    use_fluidsynth: None picks FluidSynth when available (see `fluidsynth_available`) and the sine synth otherwise;
    True requires FluidSynth (FileNotFoundError when absent); False forces the sine synth (same output everywhere,
    which tests rely on).  A sequence without notes gives silence (all zeros), never NaN.
    """
    if use_fluidsynth is None:
        use_fluidsynth = fluidsynth_available()
    elif use_fluidsynth and not fluidsynth_available():
        raise FileNotFoundError("FluidSynth needs the `fluidsynth` program and a General MIDI soundfont "
                                f"(apt-get install fluidsynth fluid-soundfont-gm, or set ${SOUNDFONT_ENV})")
    synth = "fluidsynth" if use_fluidsynth else "sine"
    length = int(round((_end_time(ns) + TAIL_SECONDS) * sample_rate))
    if not len(ns.notes):
        return Audio(np.zeros(length, np.float32), sample_rate, synth)
    samples = _fluidsynth(ns, sample_rate) if use_fluidsynth else _sine_synth(ns, sample_rate)
    samples = _fit_length(samples, length, sample_rate)
    return Audio(_normalize(samples), sample_rate, synth)


def _fluidsynth(ns: music_pb2.NoteSequence, sample_rate: int) -> np.ndarray:
    """The fluidsynth command line on a temporary MIDI file (pyfluidsynth is not needed); float [n] mono."""
    with tempfile.TemporaryDirectory(prefix="musicgen_render_") as tmp:
        midi_path, wav_path = os.path.join(tmp, "in.mid"), os.path.join(tmp, "out.wav")
        write_midi(ns, midi_path)
        command = ["fluidsynth", "-ni", "-q", "-r", str(sample_rate), "-O", "float", "-T", "wav",
                   "-F", wav_path, find_soundfont(), midi_path]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60 + 4 * _end_time(ns))
        if result.returncode != 0 or not os.path.isfile(wav_path):
            raise RuntimeError(f"fluidsynth failed ({result.returncode}): {result.stderr.strip()[-500:]}")
        samples, _ = soundfile.read(wav_path, dtype="float32", always_2d=True)
    return samples.mean(axis=1)


def _sine_synth(ns: music_pb2.NoteSequence, sample_rate: int) -> np.ndarray:
    """note_seq's sine synth (pretty_midi `Instrument.synthesize`) for pitched notes, plus audible drums.

    pretty_midi returns zeros for drum instruments, so each drum hit becomes a short burst: a falling low sine
    "thump" for kicks, decaying noise for everything else (shorter for cymbals and hi-hats).  Seeded noise keeps
    the output deterministic.
    """
    pm = note_seq.note_sequence_to_pretty_midi(ns)
    parts = [instrument.synthesize(fs=sample_rate) for instrument in pm.instruments
             if not instrument.is_drum and instrument.notes]
    drums = [note for note in ns.notes if note.is_drum]
    if drums:
        parts.append(_drum_bursts(drums, sample_rate))
    out = np.zeros(max(len(part) for part in parts))
    for part in parts:
        out[:len(part)] += part
    return out


def _drum_bursts(notes, sample_rate: int) -> np.ndarray:
    """Drum notes -> float [n]: one decaying burst per hit, amplitude velocity / 127."""
    rng = np.random.default_rng(0)
    end = max(note.start_time for note in notes) + 0.3
    out = np.zeros(int(end * sample_rate) + 1)
    for note in notes:
        if note.pitch in KICK_PITCHES:
            t = np.arange(int(0.15 * sample_rate)) / sample_rate
            burst = np.sin(2 * np.pi * (50 * t + 60 * (1 - np.exp(-t / 0.03)) * 0.03)) * np.exp(-t / 0.06)
        else:
            decay = 0.03 if note.pitch in CYMBAL_PITCHES else 0.08
            t = np.arange(int(5 * decay * sample_rate)) / sample_rate
            burst = rng.uniform(-1, 1, len(t)) * np.exp(-t / decay) * 0.6
        start = int(note.start_time * sample_rate)
        out[start:start + len(burst)] += burst * note.velocity / 127
    return out


def _fit_length(samples: np.ndarray, length: int, sample_rate: int) -> np.ndarray:
    """Pad with zeros or cut to `length`; a cut ends with a 50 ms fade so it does not click."""
    if len(samples) < length:
        return np.pad(samples, (0, length - len(samples)))
    samples = np.array(samples[:length], np.float64)
    fade = min(length, int(0.05 * sample_rate))
    if fade:
        samples[length - fade:] *= np.linspace(1.0, 0.0, fade)
    return samples


def _normalize(samples) -> np.ndarray:
    """float32 [n] scaled so the peak is `PEAK`; silence (or non-finite junk) stays zeros."""
    samples = np.nan_to_num(np.asarray(samples, np.float64).reshape(-1))
    peak = np.abs(samples).max(initial=0.0)
    return (samples * (PEAK / peak) if peak > 0 else samples).astype(np.float32)


def write_wav(audio, path, sample_rate: int | None = None, use_fluidsynth: bool | None = None) -> str:
    """Write a 16-bit PCM mono WAV from a NoteSequence (synthesized), an `Audio`, or samples float [n].

    Samples are peak-normalised to `PEAK` so nothing clips; all-zero input writes a silent file.  sample_rate
    defaults to the `Audio`'s own rate, else `DEFAULT_SAMPLE_RATE`.  Returns the path.
    """
    if isinstance(audio, music_pb2.NoteSequence):
        audio = synthesize(audio, sample_rate or DEFAULT_SAMPLE_RATE, use_fluidsynth=use_fluidsynth)
    if isinstance(audio, Audio):
        if sample_rate and sample_rate != audio.sample_rate:
            raise ValueError(f"Audio is at {audio.sample_rate} Hz but sample_rate={sample_rate} was asked")
        audio, sample_rate = audio.samples, audio.sample_rate
    path = os.fspath(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, _normalize(audio), int(sample_rate or DEFAULT_SAMPLE_RATE), subtype="PCM_16")
    return path


# ---------------------------------------------------------------------------------------------------- piano roll


def bar_times(ns: music_pb2.NoteSequence, end: float, max_bars: int = 2000) -> list[float]:
    """Bar start times in seconds up to `end`, following tempo and time-signature changes (120 qpm, 4/4 default).

    Walks beat by beat (a beat is 1/denominator of a whole note at the tempo in force at its start); a time
    signature change starts a new bar.
    """
    tempos = sorted((t.time, t.qpm) for t in ns.tempos if t.qpm > 0) or [(0.0, 120.0)]
    sigs = sorted((s.time, s.numerator, s.denominator) for s in ns.time_signatures
                  if s.numerator > 0 and s.denominator > 0) or [(0.0, 4, 4)]
    eps = 1e-6
    bars, time, beat_in_bar, sig = [], 0.0, 0, None
    while time < end - eps and len(bars) < max_bars:
        current = max([s for s in sigs if s[0] <= time + eps], default=sigs[0])
        if current != sig:
            sig, beat_in_bar = current, 0
        if beat_in_bar == 0:
            bars.append(time)
        qpm = max([t for t in tempos if t[0] <= time + eps], default=tempos[0])[1]
        time += 60.0 / qpm * 4.0 / sig[2]
        beat_in_bar = (beat_in_bar + 1) % sig[1]
        next_sig = min((s[0] for s in sigs if s[0] > bars[-1] + eps), default=None)
        if next_sig is not None and time > next_sig + eps:
            time = next_sig  # a change falling mid-beat starts its bar where it is
    return bars


def _new_figure(figsize, dpi) -> Figure:
    figure = Figure(figsize=figsize, dpi=dpi, layout="constrained")  # fills the fixed pixel size, labels kept
    FigureCanvasAgg(figure)
    return figure


def _figure_to_array(figure: Figure) -> np.ndarray:
    figure.canvas.draw()
    return np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()


def _note_rectangles(ax, notes, rows, width_floor, cmap, norm):
    for note in notes:
        ax.add_patch(Rectangle((note.start_time, rows(note) - 0.4), max(note.end_time - note.start_time, width_floor),
                               0.8, facecolor=cmap(norm(note.velocity)), edgecolor="black", linewidth=0.3))


def piano_roll_figure(ns: music_pb2.NoteSequence, title: str | None = None, figsize=FIGSIZE, dpi=DPI) -> Figure:
    """Pitch vs time; notes are rectangles coloured by velocity; dotted bar lines; chord symbols along the top.

    Drum notes get their own lane below, one labelled row per drum (GM names), so they never look like pitches.
    """
    pitched = [note for note in ns.notes if not note.is_drum]
    drums = [note for note in ns.notes if note.is_drum]
    end = _end_time(ns) or 1.0  # an empty sequence still gets a readable axis
    figure = _new_figure(figsize, dpi)
    cmap, norm = matplotlib.colormaps["viridis"], matplotlib.colors.Normalize(1, 127)
    drum_pitches = sorted({note.pitch for note in drums})
    if drums:
        pitch_ax, drum_ax = figure.subplots(2, 1, sharex=True, height_ratios=[3, max(1.0, len(drum_pitches) / 3)])
    else:
        pitch_ax, drum_ax = figure.subplots(1, 1), None
    width_floor = end / 400  # very short notes (drum hits) stay visible

    _note_rectangles(pitch_ax, pitched, lambda note: note.pitch, width_floor, cmap, norm)
    low, high = (min(n.pitch for n in pitched), max(n.pitch for n in pitched)) if pitched else (60, 72)
    low, high = low - 2, high + 2
    pitch_ax.set_ylim(low - 0.5, high + 0.5)
    c_pitches = [p for p in range(low, high + 1) if p % 12 == 0] or [low + (high - low) // 2]
    pitch_ax.set_yticks(c_pitches, [pretty_midi.note_number_to_name(p) for p in c_pitches])
    pitch_ax.set_ylabel("pitch")
    for time, text in sorted((a.time, a.text) for a in ns.text_annotations if a.annotation_type == CHORD_SYMBOL):
        pitch_ax.text(time + end / 200, high + 0.4, text, fontsize=8, va="top", ha="left", color="firebrick")

    axes = [pitch_ax]
    if drum_ax is not None:
        row = {pitch: index for index, pitch in enumerate(drum_pitches)}
        _note_rectangles(drum_ax, drums, lambda note: row[note.pitch], width_floor, cmap, norm)
        drum_ax.set_ylim(-0.6, len(drum_pitches) - 0.4)
        drum_ax.set_yticks(range(len(drum_pitches)), [_drum_name(p) for p in drum_pitches], fontsize=7)
        drum_ax.set_ylabel("drums")
        axes.append(drum_ax)
    if not ns.notes:
        pitch_ax.text(0.5, 0.5, "(no notes)", transform=pitch_ax.transAxes, ha="center", va="center", color="gray")

    bars = bar_times(ns, end) if (ns.tempos or ns.time_signatures) else []
    for ax in axes:
        for time in bars:
            ax.axvline(time, color="gray", linewidth=0.6, linestyle=":")
        ax.set_xlim(0, end)
    axes[-1].set_xlabel("time (s)")
    if title:
        pitch_ax.set_title(title)
    figure.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="velocity", pad=0.01)
    return figure


def _drum_name(pitch: int) -> str:
    try:
        return f"{pretty_midi.note_number_to_drum_name(pitch)} ({pitch})"
    except Exception:  # pretty_midi raises for pitches outside the GM drum range
        return str(pitch)


def piano_roll_png(ns: music_pb2.NoteSequence, path, title: str | None = None, figsize=FIGSIZE, dpi=DPI) -> str:
    """Save `piano_roll_figure` as a PNG of figsize * dpi pixels (1000 x 400 by default); return the path."""
    return _save(piano_roll_figure(ns, title, figsize, dpi), path)


def piano_roll_image(ns: music_pb2.NoteSequence, title: str | None = None, figsize=FIGSIZE, dpi=DPI) -> np.ndarray:
    """The piano roll as uint8 [height, width, 3] RGB (400 x 1000 by default), for `tf.summary.image`."""
    return _figure_to_array(piano_roll_figure(ns, title, figsize, dpi))


def _save(figure: Figure, path) -> str:
    path = os.fspath(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")  # no bbox_inches="tight": the pixel size stays figsize * dpi
    return path


# ------------------------------------------------------------------------------------------------- audio figures


def _samples(samples) -> np.ndarray:
    return np.asarray(samples.samples if isinstance(samples, Audio) else samples, np.float32).reshape(-1)


def waveform_figure(samples, sample_rate: int, title: str | None = None, figsize=AUDIO_FIGSIZE, dpi=DPI) -> Figure:
    """Amplitude vs time of samples float [n] (or an `Audio`); long clips are drawn as a min/max envelope."""
    samples = _samples(samples)
    figure = _new_figure(figsize, dpi)
    ax = figure.subplots()
    width = int(figsize[0] * dpi)
    if len(samples) > 4 * width:  # one vertical min..max line per pixel column instead of millions of points
        chunks = np.array_split(samples, width)
        times = np.linspace(0, len(samples) / sample_rate, width)
        ax.fill_between(times, [c.min() for c in chunks], [c.max() for c in chunks], color="tab:blue", linewidth=0)
    else:
        ax.plot(np.arange(len(samples)) / sample_rate, samples, color="tab:blue", linewidth=0.6)
    ax.set_xlim(0, max(len(samples) / sample_rate, 1e-3))
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title)
    return figure


def spectrogram_figure(samples, sample_rate: int, title: str | None = None, figsize=AUDIO_FIGSIZE, dpi=DPI,
                       n_fft: int = 1024) -> Figure:
    """Log-frequency STFT magnitude in dB (relative to the loudest bin) of samples float [n] or an `Audio`."""
    import librosa  # imported here: librosa is slow to import and only the audio figures need it
    import librosa.display

    samples = _samples(samples)
    n_fft = min(n_fft, max(64, 2 ** int(np.log2(max(len(samples), 1)))))
    samples = np.pad(samples, (0, max(0, n_fft - len(samples))))
    magnitude = np.abs(librosa.stft(samples, n_fft=n_fft, hop_length=n_fft // 4))
    decibels = librosa.amplitude_to_db(magnitude, ref=np.max(magnitude) if magnitude.max() > 0 else 1.0,
                                       top_db=80.0)
    figure = _new_figure(figsize, dpi)
    ax = figure.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns about a log axis on silent input
        image = librosa.display.specshow(decibels, sr=sample_rate, hop_length=n_fft // 4, x_axis="time",
                                         y_axis="log", ax=ax, cmap="magma", vmin=-80, vmax=0)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    figure.colorbar(image, ax=ax, format="%+.0f dB", pad=0.01)
    if title:
        ax.set_title(title)
    return figure


def waveform_png(samples, sample_rate: int, path, title: str | None = None) -> str:
    return _save(waveform_figure(samples, sample_rate, title), path)


def waveform_image(samples, sample_rate: int, title: str | None = None) -> np.ndarray:
    """uint8 [300, 1000, 3] RGB waveform plot for `tf.summary.image`."""
    return _figure_to_array(waveform_figure(samples, sample_rate, title))


def spectrogram_png(samples, sample_rate: int, path, title: str | None = None) -> str:
    return _save(spectrogram_figure(samples, sample_rate, title), path)


def spectrogram_image(samples, sample_rate: int, title: str | None = None) -> np.ndarray:
    """uint8 [300, 1000, 3] RGB spectrogram for `tf.summary.image`."""
    return _figure_to_array(spectrogram_figure(samples, sample_rate, title))


# ------------------------------------------------------------------------------------------------------ together


def write_musicxml(ns: music_pb2.NoteSequence, path) -> str:
    """Sheet music (MusicXML, opens in MuseScore) via music21, which quantizes and spells the notes."""
    import music21

    with tempfile.TemporaryDirectory() as folder:
        midi = write_midi(ns, Path(folder) / "score.mid")
        score = music21.converter.parse(midi, format="midi", quantizePost=True)
        score.write("musicxml", fp=str(path))
    return str(path)


def render_all(ns: music_pb2.NoteSequence, out_dir, stem: str, sample_rate: int = DEFAULT_SAMPLE_RATE,
               use_fluidsynth: bool | None = None, title: str | None = None,
               musicxml: bool = False) -> dict[str, str]:
    """Write `<stem>.mid`, `<stem>.wav`, `<stem>.png` (piano roll) and, with `musicxml`, `<stem>.musicxml`.

    Returns {"mid": path, "wav": path, "png": path[, "musicxml": path]}; `fluidsynth_available()` tells which
    synth made the WAV when use_fluidsynth is None.
    """
    out_dir = Path(out_dir)
    audio = synthesize(ns, sample_rate, use_fluidsynth=use_fluidsynth)
    paths = {"mid": write_midi(ns, out_dir / f"{stem}.mid"),
             "wav": write_wav(audio, out_dir / f"{stem}.wav"),
             "png": piano_roll_png(ns, out_dir / f"{stem}.png", title=title if title is not None else stem)}
    if musicxml:
        paths["musicxml"] = write_musicxml(ns, out_dir / f"{stem}.musicxml")
    return paths

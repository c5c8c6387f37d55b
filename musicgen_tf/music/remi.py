"""REMI tokens (Huang & Yang 2020, "Pop Music Transformer") <-> NoteSequence.

A piece becomes one flat sequence of `Type_Value` tokens, bar by bar:

    Bar_None TimeSig_4/4 Position_1/16 Chord_C:maj Tempo-Class_mid Tempo-Value_30
    Note-Velocity_20 Note-On_60 Note-Duration_4 Position_5/16 ... Bar_None ... EOS

Why REMI: bars and positions inside the bar are explicit, so a Transformer-XL sees the metrical grid instead of
having to count time shifts.  Conventions (kept from the paper's code, `YatingMusic/remi/utils.py`, unless noted):

- Positions are 1-based grid steps inside the bar, written `i/n` with n = positions in *this* bar; the grid is
  `positions_per_quarter` (default 4, so 16 per 4/4 bar) times the bar's length in quarters.  The paper only knew
  4/4; we add `TimeSig_n/d` right after `Bar_None` at the first bar and whenever the meter changes.
- One `Position` per occupied step (the paper's code repeats it before every item; `repeat_position=True` does
  that).  At one step the order is Chord, Tempo, then notes sorted by (pitch, duration, velocity) so that the
  encoding is canonical and NoteSequence -> REMI -> NoteSequence -> REMI is exact.
- Velocity: 32 bins of `linspace(0, 128, 33)`; the token value is the bin index; decoding gives the bin's edge.
- Duration: grid steps 1..`max_duration` (the paper: 64 bins of 1/32 note); longer notes are clipped.
- Tempo: class slow/mid/fast for [30, 90), [90, 150), [150, 210) qpm and value = qpm - class start (0..59);
  emitted at the start and whenever the rounded tempo changes.
- Chords: `Chord_<root>:<quality>` or `Chord_N:N`; from analysed markers when the sequence has them (Pop1K7's
  `midi_analyzed` files), else recognised with the paper's own rule-based recogniser (`chords.py`).
- Ids: PAD=0, EOS=1 (end of piece), then the vocabulary in a fixed order built from the parameters alone.

Times come from seconds through the tempo map (quarters), so unquantized MIDI is snapped to the grid here.
"""

from __future__ import annotations

import bisect
import itertools
import re
from typing import Any, Iterable, Sequence

import numpy as np
from note_seq.protobuf import music_pb2

from musicgen_tf.errors import SkipInput
from musicgen_tf.music.chords import recognize_chords
from musicgen_tf.music.converter import Converter, Feature

# ---------------------------------------------------------------------------------------------- shared constants
PAD, EOS = "PAD", "EOS"
PAD_ID, EOS_ID = 0, 1
BAR = "Bar_None"
VELOCITY_BINS = np.linspace(0, 128, 32 + 1, dtype=np.int64)  # paper: 32 bins, value = bin index
TEMPO_CLASSES = {"slow": 30, "mid": 90, "fast": 150}  # class -> first qpm; each class spans TEMPO_SPAN qpm
TEMPO_SPAN = 60
MIN_QPM, MAX_QPM = 30, 30 + 3 * TEMPO_SPAN - 1
DEFAULT_QPM = 120.0
DEFAULT_FLAVOUR = "musicgen"  # the other: "pop-music-transformer" (remi_pop.py)
PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
CHORD_QUALITIES = ("maj", "min", "dim", "aug", "dom7", "maj7", "min7", "hdim7", "dim7", "sus2", "sus4")
NO_CHORD = "N:N"
DEFAULT_TIME_SIGNATURES = ("4/4", "3/4", "2/4", "5/4", "6/4", "7/4", "2/2", "3/2",
                           "3/8", "5/8", "6/8", "7/8", "9/8", "12/8")

# Chord labels: quality spellings of chorder (Pop1K7 markers `C_M`, `A_m7`, `B_/o7`), Harte (`C:maj`), the paper's
# recogniser (`dom`) and note_seq / lead sheets (`Am`, `G7`, `Cm7b5`, `N.C.`).
_QUALITY_ALIASES = {
    "": "maj", "M": "maj", "maj": "maj", "major": "maj",
    "m": "min", "min": "min", "minor": "min", "-": "min",
    "o": "dim", "dim": "dim", "+": "aug", "aug": "aug",
    "7": "dom7", "dom": "dom7", "dom7": "dom7",
    "M7": "maj7", "maj7": "maj7", "m7": "min7", "min7": "min7",
    "/o7": "hdim7", "m7b5": "hdim7", "hdim7": "hdim7", "ø7": "hdim7", "o7": "dim7", "dim7": "dim7",
    "sus2": "sus2", "sus4": "sus4",
}
_NO_CHORD_LABELS = {"N", "NC", "N.C.", "N:N", "N_N"}
_CHORD_RE = re.compile(r"^(?:Chord_)?([A-G])([#b]?)([:_]?)(.*)$")
# Figures written back into NoteSequences (note_seq spelling, which `parse_chord_label` reads again).
_FIGURE_SUFFIX = {"maj": "", "min": "m", "dim": "dim", "aug": "+", "dom7": "7", "maj7": "maj7", "min7": "m7",
                  "hdim7": "m7b5", "dim7": "dim7", "sus2": "sus2", "sus4": "sus4"}


def parse_chord_label(text: str, strict: bool = True) -> str | None:
    """Chord text -> canonical `root:quality` (e.g. "C#:min7"), "N:N" for no chord, or None if not a chord.

    With `strict` (used for untyped MIDI markers) a bare root such as "A" is rejected, because rehearsal marks
    ("A", "B", "C") are common markers; `C_M`, `C:maj`, `Am`, `G7` are accepted.
    """
    text = text.strip()
    if text in _NO_CHORD_LABELS:
        return NO_CHORD
    match = _CHORD_RE.match(text)
    if not match:
        return None
    letter, accidental, separator, quality = match.groups()
    quality = _QUALITY_ALIASES.get(quality)
    if quality is None or (strict and not separator and not match.group(4)):
        return None
    root = (PITCH_CLASSES.index(letter) + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    return f"{PITCH_CLASSES[root]}:{quality}"


def chord_figure(label: str) -> str:
    """Canonical label -> note_seq-style figure for a CHORD_SYMBOL annotation ("C:min7" -> "Cm7", "N:N" -> "N.C.")."""
    if label == NO_CHORD:
        return "N.C."
    root, quality = label.split(":")
    return root + _FIGURE_SUFFIX[quality]


def tempo_tokens(qpm: float) -> tuple[str, str]:
    """qpm -> (`Tempo-Class_x`, `Tempo-Value_v`) after rounding and clipping to [30, 209]."""
    qpm = min(max(round(qpm), MIN_QPM), MAX_QPM)
    name = [n for n, start in TEMPO_CLASSES.items() if start <= qpm < start + TEMPO_SPAN][0]
    return f"Tempo-Class_{name}", f"Tempo-Value_{qpm - TEMPO_CLASSES[name]}"


def velocity_bin(velocity):
    """MIDI velocity (int or int array) -> bin index 0..31."""
    return np.clip(np.searchsorted(VELOCITY_BINS, velocity, side="right") - 1, 0, len(VELOCITY_BINS) - 2)


def seconds_to_quarters_fn(ns: music_pb2.NoteSequence):
    """Return f(seconds) -> quarters following the tempo map (120 qpm before the first tempo, as MIDI)."""
    tempos = sorted((t.time, t.qpm) for t in ns.tempos if t.qpm > 0)
    if not tempos or tempos[0][0] > 0:
        tempos.insert(0, (0.0, DEFAULT_QPM))
    times = np.array([t for t, _ in tempos])
    qpms = np.array([q for _, q in tempos])
    starts = np.concatenate([[0.0], np.cumsum(np.diff(times) * qpms[:-1] / 60.0)])

    def to_quarters(seconds):
        """seconds (float or float array) -> quarters."""
        i = np.maximum(np.searchsorted(times, seconds, side="right") - 1, 0)
        return starts[i] + (seconds - times[i]) * qpms[i] / 60.0

    return to_quarters


def _steps_to_seconds_fn(tempo_steps: list[tuple[int, float]], positions_per_quarter: int):
    """Inverse of the above on the grid: tempo changes [(step, qpm)] -> f(step) -> seconds."""
    tempo_steps = sorted(tempo_steps) or [(0, DEFAULT_QPM)]
    if tempo_steps[0][0] > 0:
        tempo_steps.insert(0, (0, DEFAULT_QPM))
    steps = [s for s, _ in tempo_steps]
    starts = [0.0]
    for (s0, q0), (s1, _) in zip(tempo_steps, tempo_steps[1:]):
        starts.append(starts[-1] + (s1 - s0) / positions_per_quarter * 60.0 / q0)

    def to_seconds(step: int) -> float:
        i = max(bisect.bisect_right(steps, step) - 1, 0)
        return starts[i] + (step - steps[i]) / positions_per_quarter * 60.0 / tempo_steps[i][1]

    return to_seconds


def placed_tokens(tokens: Sequence[str], positions_per_quarter: int):
    """Our REMI token strings -> (grid step, type, value) of each token from the first bar on, as every reader of
    REMI places them: bar lengths from the meter (4/4 until a `TimeSig` token, which is yielded at its bar's start),
    `Position` moves within the bar (consumed here, as `Bar` is), reading stops at EOS."""
    bar_start, bar_length, meter, position = None, 0, "4/4", 0
    for token in tokens:
        if token == EOS:
            return
        kind, _, value = token.partition("_")
        if token == BAR:
            bar_start = 0 if bar_start is None else bar_start + bar_length
            bar_length = bar_positions(meter, positions_per_quarter)
            position = bar_start
        elif bar_start is None:
            continue  # nothing is placed before the first bar
        elif kind == "TimeSig":
            meter = value
            bar_length = bar_positions(meter, positions_per_quarter)
            yield bar_start, kind, value
        elif kind == "Position":
            position = bar_start + int(value.split("/")[0]) - 1
        else:
            yield position, kind, value


# ---------------------------------------------------------------------------------------------------- vocabulary
class TokenVocabulary:
    """Token strings <-> int ids in the given order; a token's type is the part before its first `_`."""

    where = "the REMI vocabulary"  # named when a token is missing

    def __init__(self, tokens: Sequence[str]):
        self.tokens = [str(t) for t in tokens]
        self._ids = {token: i for i, token in enumerate(self.tokens)}
        if len(self._ids) != len(self.tokens):
            raise ValueError(f"{self.where} lists a token twice")
        types = [token.split("_")[0] for token in self.tokens]  # "Note-On", "Chord", ...
        self._type_codes = {token_type: code for code, token_type in enumerate(dict.fromkeys(types))}
        self._type_code_of_id = np.array([self._type_codes[token_type] for token_type in types])

    def ids_of_type(self, ids: np.ndarray, token_type: str) -> np.ndarray:
        """bool mask of `ids` whose token type is `token_type`."""
        return self._type_code_of_id[np.asarray(ids)] == self._type_codes.get(token_type, -1)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def token_to_id(self, token: str) -> int:
        try:
            return self._ids[token]
        except KeyError:
            raise ValueError(f"token {token!r} is not in {self.where}") from None

    def id_to_token(self, token_id: int) -> str:
        return self.tokens[int(token_id)]

    def __contains__(self, token: str) -> bool:
        return token in self._ids


class RemiVocabulary(TokenVocabulary):
    """Our REMI tokens, built deterministically from the converter parameters (no corpus pass)."""

    def __init__(self, positions_per_quarter: int, time_signatures: Sequence[str], max_duration: int,
                 min_pitch: int, max_pitch: int):
        self.positions_per_bar = {ts: bar_positions(ts, positions_per_quarter) for ts in time_signatures}
        tokens = [PAD, EOS, BAR]
        tokens += [f"TimeSig_{ts}" for ts in time_signatures]
        for n in sorted(set(self.positions_per_bar.values())):
            tokens += [f"Position_{i}/{n}" for i in range(1, n + 1)]
        tokens += [f"Chord_{root}:{q}" for root in PITCH_CLASSES for q in CHORD_QUALITIES] + [f"Chord_{NO_CHORD}"]
        tokens += [f"Tempo-Class_{name}" for name in TEMPO_CLASSES]
        tokens += [f"Tempo-Value_{v}" for v in range(TEMPO_SPAN)]
        tokens += [f"Note-Velocity_{v}" for v in range(len(VELOCITY_BINS) - 1)]
        tokens += [f"Note-On_{p}" for p in range(min_pitch, max_pitch + 1)]
        tokens += [f"Note-Duration_{d}" for d in range(1, max_duration + 1)]
        super().__init__(tokens)


def bar_positions(time_signature: str, positions_per_quarter: int) -> int:
    """Grid steps in one bar of `n/d`: positions_per_quarter * n * 4 / d; must be a whole number."""
    numerator, denominator = (int(x) for x in time_signature.split("/"))
    steps = positions_per_quarter * numerator * 4 / denominator
    if steps != int(steps) or steps <= 0:
        raise ValueError(f"{time_signature} does not fill a whole number of steps at {positions_per_quarter}/quarter")
    return int(steps)


# ----------------------------------------------------------------------------------------------------- converter
class RemiConverter(Converter):
    """NoteSequence <-> REMI ids.  Example: `{"tokens": int64 [length]}`, one per piece, ending with EOS.

    Args:
      positions_per_quarter: grid resolution (4 -> 16 positions per 4/4 bar).
      time_signatures: meters in the vocabulary; a piece in another meter is skipped.
      max_duration: longest duration token in grid steps (longer notes are clipped).
      min_pitch, max_pitch: Note-On range; notes outside are dropped.
      chords: "auto" (markers if present, else inferred), "markers", "infer" or "none".
      include_drums: REMI has no instrument tokens, so drums are left out by default.
      repeat_position: repeat `Position` before every item, as the paper's code does.
    """

    name = "remi"
    schema_version = 1
    pad_id, eos_id = PAD_ID, EOS_ID  # the special ids a model of these tokens is built with

    def __new__(cls, *args, flavour: str = DEFAULT_FLAVOUR, **kwargs):
        """`flavour="pop-music-transformer"` builds the original's REMI (`remi_pop.PopMusicRemiConverter`)."""
        if cls is RemiConverter and flavour != DEFAULT_FLAVOUR:
            from musicgen_tf.music.remi_pop import FLAVOUR, PopMusicRemiConverter

            if flavour != FLAVOUR:
                raise ValueError(f"REMI flavour must be {DEFAULT_FLAVOUR!r} or {FLAVOUR!r}, got {flavour!r}")
            return super().__new__(PopMusicRemiConverter)
        return super().__new__(cls)

    def __init__(self, positions_per_quarter: int = 4, time_signatures: Sequence[str] = DEFAULT_TIME_SIGNATURES,
                 max_duration: int = 64, min_pitch: int = 0, max_pitch: int = 127, chords: str = "auto",
                 include_drums: bool = False, repeat_position: bool = False, flavour: str = DEFAULT_FLAVOUR):
        if chords not in ("auto", "markers", "infer", "none"):
            raise ValueError(f"chords must be auto|markers|infer|none, got {chords!r}")
        self.positions_per_quarter = int(positions_per_quarter)
        self.time_signatures = [str(ts) for ts in time_signatures]
        self.max_duration = int(max_duration)
        self.min_pitch, self.max_pitch = int(min_pitch), int(max_pitch)
        self.chords = chords
        self.include_drums = bool(include_drums)
        self.repeat_position = bool(repeat_position)
        self.vocab = RemiVocabulary(self.positions_per_quarter, self.time_signatures, self.max_duration,
                                    self.min_pitch, self.max_pitch)

    # -- interface
    def params(self) -> dict[str, Any]:
        return {"positions_per_quarter": self.positions_per_quarter, "time_signatures": list(self.time_signatures),
                "max_duration": self.max_duration, "min_pitch": self.min_pitch, "max_pitch": self.max_pitch,
                "chords": self.chords, "include_drums": self.include_drums,
                "repeat_position": self.repeat_position}

    def feature_spec(self) -> dict[str, Feature]:
        return {"tokens": Feature("int64", (None,))}

    @property
    def vocab_size(self) -> int:
        return self.vocab.vocab_size

    def to_examples(self, ns: music_pb2.NoteSequence) -> list[dict[str, np.ndarray]]:
        return [{"tokens": self.encode_ids(ns)}]

    def from_example(self, example: dict[str, np.ndarray]) -> music_pb2.NoteSequence:
        return self.decode(self.tokens_to_strings(example["tokens"]))

    def stats(self, example: dict[str, np.ndarray]) -> dict[str, float]:
        ids = np.asarray(example["tokens"]).reshape(-1)
        ids = ids[ids != PAD_ID]
        return {"length": float(len(ids)), "bars": float(np.sum(ids == self.vocab.token_to_id(BAR))),
                "notes": float(self.vocab.ids_of_type(ids, "Note-On").sum()),
                "chords": float(self.vocab.ids_of_type(ids, "Chord").sum())}

    # -- helpers for generation
    def tokens_to_strings(self, ids: Iterable[int]) -> list[str]:
        """int ids [length] -> token strings (PAD dropped)."""
        return [self.vocab.id_to_token(i) for i in np.asarray(ids).reshape(-1) if int(i) != PAD_ID]

    def original_event_names(self, ids: Iterable[int]) -> list[str]:
        """int ids -> event names spelled as the Pop Music Transformer's (`Note Velocity_20`, `Tempo Class_mid`);
        PAD dropped.  (This flavour's durations count grid steps, the original's 32nd-note bins.)"""
        return [token.replace("-", " ", 1) if "_" in token else token for token in self.tokens_to_strings(ids)]

    def strings_to_tokens(self, strings: Iterable[str]) -> np.ndarray:
        """Token strings -> int64 ids [length]."""
        return np.fromiter(map(self.vocab.token_to_id, strings), dtype=np.int64)

    def count_bars(self, ids: Iterable[int]) -> int:
        """Number of `Bar_None` tokens in an id sequence (generation stops after N bars)."""
        return int(np.sum(np.asarray(ids).reshape(-1) == self.vocab.token_to_id(BAR)))

    def first_bars(self, ids: Iterable[int], num_bars: int) -> np.ndarray:
        """The prefix holding the first `num_bars` bars (e.g. an 8-bar prompt), without EOS/PAD; int64 [length]."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        ids = ids[(ids != PAD_ID) & (ids != EOS_ID)]
        bar_starts = np.flatnonzero(ids == self.vocab.token_to_id(BAR))
        return ids if len(bar_starts) <= num_bars else ids[:bar_starts[num_bars]]

    # -- NoteSequence -> tokens
    def encode(self, ns: music_pb2.NoteSequence) -> list[str]:
        """NoteSequence -> REMI token strings ending with EOS; raises SkipInput when nothing usable is left."""
        return self.tokens_to_strings(self.encode_ids(ns))

    def encode_ids(self, ns: music_pb2.NoteSequence) -> np.ndarray:
        """NoteSequence -> REMI ids int64 [length] ending with EOS (array code: this runs once per corpus note)."""
        path = ns.filename or ns.id or "<sequence>"
        to_quarters = seconds_to_quarters_fn(ns)
        ppq = self.positions_per_quarter
        vocab = self.vocab

        def step(seconds: float) -> int:
            return int(round(to_quarters(seconds) * ppq))

        rows = [(n.start_time, n.end_time, n.pitch, n.velocity, n.is_drum) for n in ns.notes]
        table = np.fromiter(itertools.chain.from_iterable(rows), np.float64, count=5 * len(rows)).reshape(-1, 5)
        starts, ends = np.rint(to_quarters(table[:, :2]) * ppq).astype(np.int64).T
        pitches, drums = table[:, 2].astype(np.int64), table[:, 4] > 0
        keep = (~drums | self.include_drums) & (pitches >= self.min_pitch) & (pitches <= self.max_pitch)
        if not keep.any():
            raise SkipInput(path, "no pitched notes")
        note_starts, note_pitches = starts[keep], pitches[keep]
        durations = np.minimum(np.maximum(ends[keep] - note_starts, 1), self.max_duration)
        velocities = velocity_bin(table[keep, 3])
        order = np.lexsort((velocities, durations, note_pitches, note_starts))  # canonical order at one step
        note_starts = note_starts[order]
        triples = np.stack([vocab.token_to_id("Note-Velocity_0") + velocities,
                            vocab.token_to_id(f"Note-On_{self.min_pitch}") + note_pitches - self.min_pitch,
                            vocab.token_to_id("Note-Duration_1") + durations - 1], axis=1)[order]
        last_step = int(note_starts[-1])
        bars = self._bars(ns, step, last_step, path)
        positions = self._position_ids(bars)
        items: dict[int, list[int]] = {}  # step -> its ids: Position, chord, tempo pair, notes

        def add(at_step: int, item: list[int]) -> None:
            """Append one item at a step, after a Position token (only the step's first item has one by default)."""
            step_ids = items.setdefault(at_step, [])
            if self.repeat_position or not step_ids:
                step_ids.append(positions[at_step])
            step_ids.extend(item)

        pitched = ~drums
        grid_notes = np.stack([starts[pitched], np.maximum(ends[pitched], starts[pitched] + 1), pitches[pitched]], 1)
        for chord_step, label in self._chords(ns, step, grid_notes).items():
            if chord_step <= last_step:
                add(chord_step, [vocab.token_to_id(f"Chord_{label}")])
        previous = None
        for tempo_step, qpm in self._tempo_steps(ns, step):
            pair = tempo_tokens(qpm)
            if tempo_step <= last_step and pair != previous:
                add(tempo_step, [vocab.token_to_id(t) for t in pair])
                previous = pair
        # the notes of one step are one item, or one item each when Position is repeated
        firsts = (np.arange(len(note_starts)) if self.repeat_position
                  else np.unique(note_starts, return_index=True)[1]).tolist()
        note_ids, note_steps = triples.reshape(-1).tolist(), note_starts.tolist()
        for first, after in zip(firsts, firsts[1:] + [len(note_steps)]):
            add(note_steps[first], note_ids[3 * first:3 * after])
        return self._assemble(bars, items)

    def _position_ids(self, bars: list[tuple[int, int, str]]) -> list[int]:
        """The Position id of every grid step the bars cover, indexed by step."""
        starts, lengths = np.array([(start, length) for start, length, _ in bars]).T
        first = np.array([self.vocab.token_to_id(f"Position_1/{length}") for length in lengths.tolist()])
        return (np.repeat(first - starts, lengths) + np.arange(lengths.sum())).tolist()

    def _assemble(self, bars: list[tuple[int, int, str]], items: dict[int, list[int]]) -> np.ndarray:
        """Bar lines, meter changes and the ids of each occupied step, in time order -> ids ending with EOS."""
        ids, meter, occupied, index = [], None, sorted(items), 0
        for bar_start, length, ts in bars:
            ids.append(self.vocab.token_to_id(BAR))
            if ts != meter:
                ids.append(self.vocab.token_to_id(f"TimeSig_{ts}"))
                meter = ts
            while index < len(occupied) and occupied[index] < bar_start + length:
                ids.extend(items[occupied[index]])
                index += 1
        ids.append(EOS_ID)
        return np.array(ids, dtype=np.int64)

    def _bars(self, ns, step, last_step: int, path: str) -> list[tuple[int, int, str]]:
        """[(start step, length in steps, "n/d")] covering 0..last_step; meter changes apply at the next bar line."""
        changes = sorted((max(step(ts.time), 0), f"{ts.numerator}/{ts.denominator}") for ts in ns.time_signatures)
        for _, ts in changes:
            if ts not in self.vocab.positions_per_bar:
                raise SkipInput(path, "unsupported time signature", f"{ts} not in {self.time_signatures}")
        meter = "4/4" if not changes or changes[0][0] > 0 else changes[0][1]
        length = bar_positions(meter, self.positions_per_quarter)
        bars, start, index = [], 0, 0
        while start <= last_step:
            while index < len(changes) and changes[index][0] <= start:
                meter, index = changes[index][1], index + 1
                length = bar_positions(meter, self.positions_per_quarter)
            bars.append((start, length, meter))
            start += length
        return bars

    def _tempo_steps(self, ns, step) -> list[tuple[int, float]]:
        """[(step, qpm)] with the tempo in force at step 0 first; changes snapping to one step keep the last."""
        by_step: dict[int, float] = {}
        for tempo in sorted(ns.tempos, key=lambda t: t.time):
            by_step[max(step(tempo.time), 0)] = tempo.qpm
        if 0 not in by_step:
            by_step[0] = DEFAULT_QPM
        return sorted(by_step.items())

    def _chords(self, ns, step, grid_notes: np.ndarray) -> dict[int, str]:
        """{step: canonical chord label}: annotated chords if any, else inferred (empty when inference fails)."""
        if self.chords == "none":
            return {}
        found: dict[int, str] = {}
        for ta in sorted(ns.text_annotations, key=lambda a: a.time):
            typed = ta.annotation_type == music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL
            untyped = ta.annotation_type == music_pb2.NoteSequence.TextAnnotation.UNKNOWN
            label = parse_chord_label(ta.text, strict=not typed) if typed or untyped else None
            if label is not None:
                found[max(step(ta.time), 0)] = label
        if found or self.chords == "markers":
            return found
        # No analysed chords: the REMI paper's rule-based recogniser on the (start, end, pitch) grid of pitched notes.
        return dict(recognize_chords(grid_notes, self.positions_per_quarter))

    # -- token strings -> NoteSequence
    def decode(self, tokens: Sequence[str]) -> music_pb2.NoteSequence:
        """REMI token strings -> NoteSequence (tempos, time signatures, notes, CHORD_SYMBOL annotations).

        Tolerant of generated text: stops at EOS, ignores PAD and tokens out of place (a Note-On without a
        following duration is dropped; a note without velocity reuses the last one).
        """
        ppq = self.positions_per_quarter
        velocity = VELOCITY_BINS[len(VELOCITY_BINS) // 2]
        pitch, tempo_class = None, None
        notes, chords, tempos, meters = [], [], [], []
        for position, kind, value in placed_tokens(tokens, ppq):
            if kind == "TimeSig":
                meters.append((position, value))
            elif kind == "Chord":
                chords.append((position, value))
            elif kind == "Tempo-Class":
                tempo_class = value
            elif kind == "Tempo-Value" and tempo_class is not None:
                tempos.append((position, float(TEMPO_CLASSES[tempo_class] + int(value))))
                tempo_class = None
            elif kind == "Note-Velocity":
                velocity = VELOCITY_BINS[int(value)]
            elif kind == "Note-On":
                pitch = int(value)
            elif kind == "Note-Duration" and pitch is not None:
                notes.append((position, pitch, int(value), max(int(velocity), 1)))
                pitch = None

        ns = music_pb2.NoteSequence(ticks_per_quarter=480)
        by_step = {s: q for s, q in tempos}  # last tempo at a step wins, as in the encoder
        to_seconds = _steps_to_seconds_fn(list(by_step.items()), ppq)
        for s, qpm in sorted(by_step.items()):
            ns.tempos.add(time=to_seconds(s), qpm=qpm)
        for s, ts in meters:
            numerator, denominator = (int(x) for x in ts.split("/"))
            ns.time_signatures.add(time=to_seconds(s), numerator=numerator, denominator=denominator)
        for s, label in chords:
            ns.text_annotations.add(time=to_seconds(s), text=chord_figure(label),
                                    annotation_type=music_pb2.NoteSequence.TextAnnotation.CHORD_SYMBOL)
        for s, p, d, v in notes:
            ns.notes.add(pitch=p, velocity=v, start_time=to_seconds(s), end_time=to_seconds(s + d))
            ns.total_time = max(ns.total_time, to_seconds(s + d))
        return ns



__all__ = ["RemiConverter", "RemiVocabulary", "parse_chord_label", "chord_figure", "seconds_to_quarters_fn",
           "BAR", "EOS", "PAD", "EOS_ID", "PAD_ID"]

"""music21 Score -> `note_seq.NoteSequence` (for kern and ABC, which only music21 parses robustly).

note_seq's own ABC parser rejects most Essen tunes (it fails on rests `z` in many of them), so symbolic
formats other than MIDI go through music21.  Times are laid out at the score's first metronome mark, else
120 quarters per minute, like a MIDI export would.
"""

from __future__ import annotations

from music21 import chord, key, meter, tempo
from note_seq.protobuf import music_pb2

DEFAULT_QPM = 120.0
DEFAULT_VELOCITY = 90  # note_seq's ABC parser uses the same default loudness
TICKS_PER_QUARTER = 220


def _key_of(element) -> key.Key:
    return element if isinstance(element, key.Key) else element.asKey("major")


def score_to_note_sequence(score, monophonic: bool = True) -> music_pb2.NoteSequence:
    """Flatten a music21 Score/Part into a NoteSequence; with `monophonic`, a chord keeps only its top note."""
    flat = score.stripTies(inPlace=False).flatten()
    marks = list(flat.getElementsByClass(tempo.MetronomeMark))
    qpm = float(marks[0].getQuarterBPM()) if marks and marks[0].getQuarterBPM() else DEFAULT_QPM
    seconds_per_quarter = 60.0 / qpm
    ns = music_pb2.NoteSequence()
    ns.ticks_per_quarter = TICKS_PER_QUARTER
    ns.tempos.add(time=0.0, qpm=qpm)
    for signature in flat.getElementsByClass(meter.TimeSignature):
        ns.time_signatures.add(time=float(signature.offset) * seconds_per_quarter,
                               numerator=signature.numerator, denominator=signature.denominator)
    for signature in flat.getElementsByClass(key.KeySignature):
        k = _key_of(signature)
        ns.key_signatures.add(time=float(signature.offset) * seconds_per_quarter, key=k.tonic.pitchClass,
                              mode=music_pb2.NoteSequence.KeySignature.MINOR if k.mode == "minor"
                              else music_pb2.NoteSequence.KeySignature.MAJOR)
    for element in flat.notes:
        length = float(element.quarterLength)
        if length <= 0:  # grace notes have no duration of their own
            continue
        pitches = [p.midi for p in element.pitches] if isinstance(element, chord.Chord) else [element.pitch.midi]
        if monophonic:
            pitches = [max(pitches)]
        start = float(element.offset) * seconds_per_quarter
        for pitch in pitches:
            ns.notes.add(pitch=int(pitch), velocity=DEFAULT_VELOCITY, start_time=start,
                         end_time=start + length * seconds_per_quarter)
    ns.total_time = max((n.end_time for n in ns.notes), default=0.0)
    title = getattr(score.metadata, "title", None) if score.metadata is not None else None
    if title:
        ns.sequence_metadata.title = str(title)
    return ns

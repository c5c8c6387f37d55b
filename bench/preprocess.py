"""Preprocessing throughput on the same real MIDI files, side by side in one run.

Compares notes/s and files/s of: seed-style music21 parsing, Magenta-style `note_seq.midi_file_to_note_sequence`,
symusic alone (the decoding limit), our decoder (symusic -> NoteSequence), and our pipeline end to end
(decode -> representation -> serialized tf.train.Example) in one process, each the best of 5 passes taken in
turns (every round runs each contender once, so a burst of load from other processes cannot land on one contender
only); then the Beam pipeline with 1 and N DirectRunner worker processes on a larger copy of the corpus.  The Beam
runs alternate (1, N, 1, N) and each setting keeps its faster run: the same work for both, and neither gets the
runner process's one-time warm-up or such a burst alone.

Real MIDI: `--midi-dir DIR` (e.g. Pop1K7 or Lakh), else music21's bundled scores rendered to MIDI once
(Bach chorales and others, cached in bench/.cache) plus the real .mid files music21 ships.

Essen ABC tunes (music21's corpus, the demo's data): our reader end to end (symusic, music21 for a tune it cannot
read -> melody examples of the demo preset) against music21's parse alone of the same tunes, interleaved the same way.

    python bench/preprocess.py [--midi-dir DIR] [--representation remi] [--workers 2] [--esac-tunes 150] [--esac-only]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore")

import note_seq  # noqa: E402
import symusic  # noqa: E402

from musicgen_tf.cli import local_workers_args  # noqa: E402
from musicgen_tf.errors import SkipInput  # noqa: E402
from musicgen_tf.music.midi_io import midi_file_to_note_sequence  # noqa: E402
from musicgen_tf.music.representations import get_converter  # noqa: E402
from musicgen_tf.preprocessing.pipeline import convert_source, run_preprocess  # noqa: E402
from musicgen_tf.preprocessing.readers import get_reader  # noqa: E402
from musicgen_tf.preprocessing.readers.base import Source  # noqa: E402

CACHE = Path(__file__).parent / ".cache" / "music21_midi"
NOTE_SEQ = "note_seq.midi_file_to_note_sequence (Magenta)"


def music21_corpus_midis(count: int) -> list[Path]:
    """Render `count` music21 corpus works (chorales first) to MIDI once; add the real .mid files music21 ships."""
    import music21
    from music21 import corpus

    CACHE.mkdir(parents=True, exist_ok=True)
    existing = sorted(CACHE.glob("*.mid"))
    if len(existing) < count:
        works = corpus.getComposer("bach")[:count]
        for index, path in enumerate(works):
            target = CACHE / f"{index:04d}_{Path(path).stem}.mid"
            if not target.exists():
                try:
                    corpus.parse(path).write("midi", fp=str(target))
                except Exception as error:  # a few corpus files do not export; the bench just uses the rest
                    print(f"  (skipped {path}: {error})", file=sys.stderr)
        existing = sorted(CACHE.glob("*.mid"))
    shipped = sorted(Path(music21.__file__).parent.rglob("*.mid"))
    return existing[:count] + [p for p in shipped if "testPrimitive" not in str(p)]


def _one_pass(files, decode, budget_seconds):
    notes = done = 0
    start = time.perf_counter()
    for path in files:
        try:
            notes += decode(path)
        except Exception:  # every contender sees the same files; failures just count no notes
            pass
        done += 1
        if budget_seconds and time.perf_counter() - start > budget_seconds:
            break
    return notes, done, time.perf_counter() - start


def _report(name, result):
    notes, done, seconds = result
    print(f"{name:<46} {notes / seconds:>12,.0f} notes/s {done / seconds:>9,.1f} files/s  ({done} files)")
    return notes / seconds


def _fastest(results):
    return min(results, key=lambda result: result[2] / max(result[0], 1))


def measure_interleaved(files, decoders: dict, passes=5) -> dict[str, float]:
    """notes/s of each `decode(path) -> notes`, best of `passes` rounds that run every decoder once in turn.

    Interleaving keeps a burst of load from other processes from landing on one contender only.
    """
    results = {name: [] for name in decoders}
    for _ in range(passes):
        for name, decode in decoders.items():
            results[name].append(_one_pass(files, decode, None))
    return {name: _report(name, _fastest(runs)) for name, runs in results.items()}


def esac_speedup(count: int, passes: int = 3) -> float:
    """notes/s of Essen tunes -> melody examples (our reader) over notes/s of music21 parsing the same tunes."""
    from music21 import converter as music21_converter

    from musicgen_tf.configs import get_preset
    from musicgen_tf.music.music21_io import score_to_note_sequence
    from musicgen_tf.preprocessing.readers.esac import read_text, split_tunebook

    reader = get_reader("music21-essen")
    sources = reader.list_sources(None)
    tunes = sources[::max(1, len(sources) // count)][:count]
    preset = get_preset("cat-mel_2bar_cpu")
    melody = get_converter(preset.representation, **preset.converter_params)
    books = {}

    def text_of(source):
        if source.path not in books:
            books[source.path] = split_tunebook(read_text(source.path))
        return books[source.path][source.tune]

    def music21_parse(source):
        return len(score_to_note_sequence(music21_converter.parse(text_of(source), format="abc",
                                                                  forceSource=True)).notes)

    notes = {source.key: music21_parse(source) for source in tunes}  # both contenders count the same notes

    def ours(source):
        text_of(source)  # the tunebook split is cached for both contenders alike
        try:
            convert_source(source, reader, melody)
        except SkipInput:  # a tune with no 2-bar window still cost its reading
            pass
        return notes[source.key]

    print(f"Essen ABC: {len(tunes)} tunes of music21's corpus, best of {passes} interleaved passes")
    rates = measure_interleaved(tunes, {"music21 parse (the old reader)": music21_parse,
                                        "musicgen_tf ESAC reader -> melody Examples": ours}, passes=passes)
    return rates["musicgen_tf ESAC reader -> melody Examples"] / rates["music21 parse (the old reader)"]


def music21_notes(path):
    from music21 import converter
    return len(converter.parse(str(path), format="midi").flatten().notes)


def beam_seconds(corpus_dir: Path, representation: str, workers: int) -> float:
    """Wall seconds of one whole run: listing, worker start-up, conversion, TFRecord writing, manifest."""
    out = Path(tempfile.mkdtemp(prefix="bench_beam_"))
    args = local_workers_args(workers)  # 1 worker too, so both runs pay the same process start-up
    start = time.perf_counter()
    run_preprocess(get_reader("midi-dir"), get_converter(representation), str(out), input_dir=str(corpus_dir),
                   num_shards=workers, pipeline_args=args)
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    print(f"{f'  Beam run, {workers} worker(s)':<46} {seconds:>12.1f} s wall")
    return seconds


def beam_rates(corpus_dir: Path, representation: str, workers: int, notes_total: int) -> tuple[float, float]:
    """notes/s of the faster of two runs with 1 and with `workers` workers, run alternately."""
    runs = {1: [], workers: []}
    for _ in range(2):
        for count in runs:
            runs[count].append(beam_seconds(corpus_dir, representation, count))
    for count, seconds in runs.items():
        print(f"{f'Beam DirectRunner, {count} worker(s)':<46} {notes_total / min(seconds):>12,.0f} notes/s   "
              f"({min(seconds):.1f}s wall, best of {len(seconds)})")
    return notes_total / min(runs[1]), notes_total / min(runs[workers])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--midi-dir", help="folder of real MIDI files (default: music21's corpus rendered)")
    parser.add_argument("--files", type=int, default=120, help="corpus works to render when no --midi-dir")
    parser.add_argument("--representation", default="remi")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--beam-copies", type=int, default=100,
                        help="corpus copies for the Beam scaling run (enough work to amortise worker start-up)")
    parser.add_argument("--esac-tunes", type=int, default=150, help="Essen tunes for the ESAC/ABC comparison")
    parser.add_argument("--esac-only", action="store_true", help="run only the ESAC/ABC comparison")
    args = parser.parse_args()

    esac = esac_speedup(args.esac_tunes)
    if args.esac_only:
        print(f"\nRESULT esac_vs_music21_parse {esac:.1f}x (target >= 5x)")
        return
    print()

    files = (sorted(p for p in Path(args.midi_dir).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
             if args.midi_dir else music21_corpus_midis(args.files))
    total_notes = sum(symusic.Score(str(p)).note_num() for p in files)
    print(f"corpus: {len(files)} real MIDI files, {total_notes:,} notes; representation {args.representation}\n")

    reader = get_reader("midi-dir")
    converter = get_converter(args.representation)

    def end_to_end(path):
        return convert_source(Source(path=str(path), key=Path(path).name), reader, converter).notes

    _report("music21 (seed style), 20 s budget", _one_pass(files, music21_notes, budget_seconds=20))
    pipeline = f"musicgen_tf end to end -> {args.representation} Example"
    rates = measure_interleaved(files, {
        NOTE_SEQ: lambda p: len(note_seq.midi_file_to_note_sequence(str(p)).notes),
        "symusic parse only (decoding limit)": lambda p: symusic.Score(str(p)).note_num(),
        "musicgen_tf decoder (symusic -> NoteSequence)": lambda p: len(midi_file_to_note_sequence(p).notes),
        pipeline: end_to_end})

    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as corpus:
        for copy in range(args.beam_copies):
            for path in files:
                target = Path(corpus) / f"copy{copy}" / path.name
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(path, target)
        one, many = beam_rates(Path(corpus), args.representation, args.workers, total_notes * args.beam_copies)

    print()
    print(f"RESULT pipeline_vs_note_seq_parse {rates[pipeline] / rates[NOTE_SEQ]:.1f}x (target >= 5x)")
    print(f"RESULT beam_{args.workers}_workers_vs_1 {many / one:.2f}x (target ~{args.workers}x)")
    print(f"RESULT esac_vs_music21_parse {esac:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()

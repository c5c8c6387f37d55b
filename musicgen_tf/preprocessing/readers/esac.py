"""ESAC / Essen folk songs: `**kern` files (one song each, e.g. `deutschl/<collection>/*.krn`) and ABC tunebooks
(many tunes per file, `X:` numbered, as in music21's bundled `essenFolksong/`).

`music21-essen` is the same reader pointed at the Essen tunebooks shipped inside music21, so the demo needs no
download.

ABC tunes are read by symusic (`music/abc_io.py`, ~10x faster than music21); a tune symusic cannot read falls back
to music21, and the manifest counts which reader read each file (`files.parsed_with`).  Kern files use music21.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from music21 import converter

from note_seq.protobuf import music_pb2

from musicgen_tf.errors import LayoutError, SkipInput
from musicgen_tf.music.abc_io import abc_to_note_sequence
from musicgen_tf.music.music21_io import score_to_note_sequence
from musicgen_tf.preprocessing import files
from musicgen_tf.preprocessing.readers.base import Reader, Source, hash_split, read_source

KERN_SUFFIXES = (".krn",)
ABC_SUFFIXES = (".abc",)
_TUNE_START = re.compile(r"^X:\s*(\S+)", re.MULTILINE)
UNREADABLE_SONG = "music21 could not parse the song"


def read_text(path: str) -> str:
    """Essen files predate UTF-8; try it first, then Latin-1 (which never fails)."""
    return decode(files.read_bytes(path))


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_tunebook(text: str) -> dict[str, str]:
    """ABC tunebook -> {tune number: tune text with the file header prepended}; duplicate numbers get `.2`, `.3`."""
    starts = list(_TUNE_START.finditer(text))
    header = text[:starts[0].start()] if starts else ""
    tunes: dict[str, str] = {}
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(text)
        number, suffix = match.group(1), 2
        name = number
        while name in tunes:
            name, suffix = f"{number}.{suffix}", suffix + 1
        tunes[name] = header + text[match.start():end]
    return tunes


@functools.lru_cache(maxsize=4)
def _tunebook(path: str, version: int | None) -> dict[str, str]:
    """Split each tunebook once per worker (a book holds hundreds of tunes, read one by one in listing order)."""
    return split_tunebook(read_text(path))


def tune_text(path: str, tune: str) -> str:
    return _tunebook(path, files.version(path))[tune]


class EsacReader(Reader):
    name = "esac"
    default_representation = "melody"
    expected_layout = ("a folder of Essen/ESAC folk songs: **kern files (*.krn, e.g. deutschl/<collection>/*.krn) "
                       "and/or ABC tunebooks (*.abc with X: numbered tunes)")

    def list_sources(self, input_dir):
        root = files.require_dir(input_dir, self.expected_layout)
        sources = []
        for relative in files.list_files(root, KERN_SUFFIXES + ABC_SUFFIXES):
            path = files.join(root, relative)
            if relative.lower().endswith(KERN_SUFFIXES):
                sources.append(Source(path=path, key=relative, split=hash_split(relative)))
                continue
            for tune in split_tunebook(read_text(path)):
                key = f"{relative}#{tune}"
                sources.append(Source(path=path, key=key, split=hash_split(key), tune=tune))
        if not sources:
            raise LayoutError(f"no .krn or .abc songs under {root}; expected {self.expected_layout}")
        return sources

    def load(self, source):
        is_abc = source.tune is not None
        text = tune_text(source.path, source.tune) if is_abc else decode(read_source(source, UNREADABLE_SONG))
        ns = None
        if is_abc:
            try:
                ns = abc_to_note_sequence(text)
            except ValueError:
                ns = None  # music21 below
        if ns is None:
            ns = self._music21(source, text, "abc" if is_abc else "humdrum")
            ns.source_info.parser = music_pb2.NoteSequence.SourceInfo.MUSIC21
        if is_abc:
            ns.source_info.encoding_type = music_pb2.NoteSequence.SourceInfo.ABC
        ns.filename = ns.id = source.key
        if not ns.notes:
            raise SkipInput(source.key, "no notes")
        return ns

    @staticmethod
    def _music21(source, text: str, music21_format: str) -> music_pb2.NoteSequence:
        try:
            score = converter.parse(text, format=music21_format, forceSource=True)
        except Exception as error:  # music21 raises many exception types for malformed input
            raise SkipInput(source.key, UNREADABLE_SONG,
                            f"{type(error).__name__}: {str(error)[:160]}") from None
        if hasattr(score, "scores"):  # an Opus: take its first score
            score = score.scores[0] if len(score.scores) else score
        return score_to_note_sequence(score)

    def parsed_with(self, ns) -> str:
        """Which reader made this NoteSequence: "symusic", "music21 fallback" (ABC symusic could not read) or
        "music21" (kern)."""
        info = music_pb2.NoteSequence.SourceInfo
        is_abc = ns.source_info.encoding_type == info.ABC
        if ns.source_info.parser == info.MUSIC21:
            return "music21 fallback" if is_abc else "music21"
        return "symusic"


class Music21EssenReader(EsacReader):
    name = "music21-essen"
    expected_layout = "nothing: the Essen folksong tunebooks shipped inside the music21 package"

    def list_sources(self, input_dir=None):
        from music21 import corpus

        paths = corpus.getComposer("essenFolksong")
        if not paths:
            raise LayoutError("music21's corpus has no essenFolksong folder; reinstall music21 (it ships the corpus)")
        return super().list_sources(Path(paths[0]).parent if input_dir is None else input_dir)

"""Studio backend without Streamlit: discovery of exports, in-process SavedModel calls -> files, plain errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from musicgen_tf.studio import backend
from musicgen_tf.studio.backend import StudioError
from tests import fixtures, serving

pytestmark = pytest.mark.slow  # trains and exports tiny models (shared with tests/serving)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """An export folder with a melody MusicVAE, a β-VAE melody model and a folder that is not an export."""
    source, _ = serving.exported("melody")
    serving.exported("beta_melody")
    root = tmp_path_factory.mktemp("studio") / "models"
    for name in ("melody", "beta-melody"):  # the shared export root may hold other tests' models too
        shutil.copytree(Path(source) / name, root / name)
    (root / "notes").mkdir()
    (root / "notes" / "README.txt").write_text("not a model")
    (root / "empty-version" / "1").mkdir(parents=True)
    return root


def test_discover_lists_models_and_explains_the_rest(models_dir):
    found = backend.discover(models_dir)
    assert [m.name for m in found.models] == ["beta-melody", "melody"]
    melody = found.models[1]
    assert melody.version == 1 and melody.representation == "melody" and melody.preset == "cat-mel_2bar"
    assert melody.metadata["converter"]["name"] == "melody"
    assert melody.can("sample") and melody.can("interpolate") and not melody.can("continue")
    assert found.models[0].can("continue")
    problems = dict(found.problems)
    assert set(problems) == {"notes", "empty-version"}
    assert "no SavedModel here" in problems["notes"]
    assert "versions [1] have no saved_model.pb" in problems["empty-version"]


def test_model_info_rejects_a_folder_without_a_saved_model(models_dir, tmp_path):
    with pytest.raises(StudioError, match=r"notes: no SavedModel here.*<models>/<name>/<version>/saved_model.pb"):
        backend.model_info(models_dir / "notes")
    with pytest.raises(StudioError, match="does not exist"):
        backend.discover(tmp_path / "missing")
    version = tmp_path / "bare" / "3"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"")
    with pytest.raises(StudioError, match=r"has no assets.extra/musicgen.json"):
        backend.model_info(tmp_path / "bare")


def test_sample_in_process_writes_files_and_a_score(models_dir, tmp_path):
    info = backend.model_info(models_dir / "melody")
    model = backend.open_model(info)
    assert isinstance(model, backend.LocalModel)
    assert model.signatures()["sample"]["inputs"]["seed"] == {"dtype": "DT_INT64", "shape": [2]}
    first = backend.generate(model, "sample", tmp_path / "a", num=2, temperature=0.9, seed=5)
    again = backend.generate(model, "sample", tmp_path / "b", num=2, temperature=0.9, seed=5)
    assert first.seed == 5 and len(first.results) == 2
    for result in first.results:
        assert set(result.files) == {"mid", "wav", "png", "musicxml"}
        assert all(Path(path).stat().st_size > 0 for path in result.files.values())
        assert result.svg.lstrip().startswith("<svg") and result.sheet_note is None
    # in-graph stateless sampling: the same seed gives the same MIDI
    for a, b in zip(first.results, again.results):
        assert Path(a.files["mid"]).read_bytes() == Path(b.files["mid"]).read_bytes()


def test_continue_and_interpolate(models_dir, tmp_path):
    beta = backend.open_model(backend.model_info(models_dir / "beta-melody"))
    done = backend.generate(beta, "continue", tmp_path / "c", prompt="60 _ _ 62 _ 64", steps=16, seed=1)
    assert done.text.split()[:6] == ["60", "_", "_", "62", "_", "64"]
    assert len(done.results) == 1 and done.results[0].svg

    melody = backend.model_info(models_dir / "melody")
    uploads = tmp_path / "uploads"
    paths = []
    for name, pitches in (("a.mid", [60, 62, 64, 65] * 4), ("b.mid", [72, 71, 69, 67] * 4)):
        fixtures.write_midi(tmp_path / name, fixtures.melody_notes(2, pitches=pitches))
        paths.append(backend.save_upload((tmp_path / name).read_bytes(), name, uploads,
                                         melody.metadata["converter"]))
    path = backend.generate(backend.open_model(melody), "interpolate", tmp_path / "i", midi_a=paths[0],
                            midi_b=paths[1], steps=3)
    assert [r.stem for r in path.results] == ["interpolate-00", "interpolate-01", "interpolate-02"]


def test_reconstruct_a_midi_upload(models_dir, tmp_path):
    melody = backend.model_info(models_dir / "melody")
    assert melody.can("reconstruct") and not melody.can("continue_midi") and not melody.is_audio
    assert melody.labels is None
    fixtures.write_midi(tmp_path / "tune.mid", fixtures.melody_notes(2, pitches=[60, 62, 64, 65] * 4))
    upload = backend.save_upload((tmp_path / "tune.mid").read_bytes(), "my tune.mid", tmp_path / "uploads",
                                 melody.metadata["converter"])
    assert Path(upload).name == "my_tune.mid"
    model = backend.open_model(melody)
    done = backend.generate(model, "reconstruct", tmp_path / "r", upload=upload)
    again = backend.generate(model, "reconstruct", tmp_path / "r2", upload=upload)
    assert [r.stem for r in done.results] == ["original", "reconstruction"]
    for result in done.results:
        assert set(result.files) == {"mid", "wav", "png", "musicxml"} and result.svg
        assert all(Path(path).stat().st_size > 0 for path in result.files.values())
    # temperature 0: the reconstruction is deterministic
    assert (Path(done.results[1].files["mid"]).read_bytes() == Path(again.results[1].files["mid"]).read_bytes())
    with pytest.raises(StudioError, match="needs an uploaded file"):
        backend.generate(model, "reconstruct", tmp_path / "x")
    with pytest.raises(StudioError, match="not a Transformer-XL export"):
        backend.generate(model, "continue_midi", tmp_path / "x", upload=upload)


def test_transformer_xl_sample_and_continue_a_midi_file(tmp_path):
    from tests.serving.test_export_txl_cvae import exported

    info = backend.model_info(exported("txl"))
    assert info.is_txl and [c for c in backend.COMMANDS if info.can(c)] == ["sample", "continue_midi"]
    model = backend.open_model(info)
    done = backend.generate(model, "sample", tmp_path / "s", num=2, steps=2, top_k=8, temperature=0.9, seed=3)
    assert [r.stem for r in done.results] == ["sample-00", "sample-01"] and done.seed == 3
    fixtures.write_midi(tmp_path / "p.mid", fixtures.melody_notes(4, pitches=[60, 62, 64, 65] * 4))
    upload = backend.save_upload((tmp_path / "p.mid").read_bytes(), "p.mid", tmp_path / "u", info.metadata["converter"])
    done = backend.generate(model, "continue_midi", tmp_path / "c", upload=upload, prompt_bars=2, steps=1, seed=1)
    assert [r.stem for r in done.results] == ["prompt", "continuation-00"]
    assert set(done.results[1].files) == {"mid", "wav", "png"}


def test_audio_sample_by_genre_and_reconstruct_a_wav(tmp_path):
    from tests.serving.test_export_txl_cvae import exported

    info = backend.model_info(exported("cvae"))
    assert info.is_audio and info.labels == ("genre_id", ["jazz", "rock"])
    assert [c for c in backend.COMMANDS if info.can(c)] == ["sample", "reconstruct"]
    model = backend.open_model(info)
    done = backend.generate(model, "sample", tmp_path / "s", num=2, seed=3, label=1)
    assert [r.stem for r in done.results] == ["sample-00", "sample-01"]
    assert all(set(r.files) == {"wav", "waveform_png", "spectrogram_png"} for r in done.results)
    with pytest.raises(StudioError, match="not a readable audio file"):
        backend.save_upload(b"RIFFjunk", "x.wav", tmp_path / "u", info.metadata["converter"])
    wav = Path(done.results[0].files["wav"]).read_bytes()
    upload = backend.save_upload(wav, "clip.wav", tmp_path / "u", info.metadata["converter"])
    done = backend.generate(model, "reconstruct", tmp_path / "r", upload=upload, label=0)
    assert [r.stem for r in done.results] == ["original", "reconstruction"]


def test_errors_are_plain_words(models_dir, tmp_path):
    melody = backend.model_info(models_dir / "melody")
    with pytest.raises(StudioError, match="not a MIDI file"):
        backend.save_upload(b"hello", "notes.txt", tmp_path)
    with pytest.raises(StudioError, match="is empty"):
        backend.save_upload(b"", "x.mid", tmp_path)
    with pytest.raises(StudioError, match="not a readable MIDI file"):
        backend.save_upload(b"MThd\x00\x00\x00\x06garbage", "broken.mid", tmp_path)
    fixtures.write_midi(tmp_path / "drums.mid", fixtures.drum_notes(2), is_drum=True)
    with pytest.raises(StudioError, match=r"drums.mid: this model's melody representation"):
        backend.save_upload((tmp_path / "drums.mid").read_bytes(), "drums.mid", tmp_path / "u",
                            melody.metadata["converter"])
    local = backend.open_model(melody)
    with pytest.raises(StudioError, match=r"cannot continue melodies \(no 'continue_melody' signature"):
        backend.generate(local, "continue", tmp_path / "c", prompt="60 _ 62")
    with pytest.raises(StudioError, match="refused the inputs"):
        local.predict("encode", {"tokens": np.zeros([1, 3], np.int64)})  # wrong window length
    down = backend.open_model(melody, server="127.0.0.1:9", timeout=2)  # nothing listens on the discard port
    with pytest.raises(StudioError, match=r"TF Serving at 127.0.0.1:9 is not answering"):
        backend.generate(down, "sample", tmp_path / "s", num=1, seed=1)


def test_launch_command_and_missing_models_folder(tmp_path, capsys):
    import argparse

    from musicgen_tf.studio.launch import APP, add_studio_arguments, run_studio, studio_command

    parser = add_studio_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--models", str(tmp_path), "--server", "localhost:8501", "--port", "9123"])
    command = studio_command(args)
    assert command[1:5] == ["-m", "streamlit", "run", str(APP)] and APP.is_file()
    assert command[command.index("--server.port") + 1] == "9123"
    assert command[command.index("--"):] == ["--", "--models", str(tmp_path), "--server", "localhost:8501"]
    assert run_studio(parser.parse_args(["--models", str(tmp_path / "missing")])) == 2
    assert "does not exist; export a model first" in capsys.readouterr().err

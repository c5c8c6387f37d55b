"""Magenta checkpoints: our import, encode and greedy decode against outputs of Magenta's own `TrainedModel`.

Fixtures (tests/data/magenta/<config>/) come from `tools/make_magenta_fixtures.py`: Magenta configs shrunk to tiny
sizes with seeded random weights, a TF1 checkpoint, the input MIDI files, and Magenta's encode (mu, sigma of every
converter window) and decode (notes at temperature 1e-5) results.  No Magenta code is needed here.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from musicgen_tf.cli import main
from musicgen_tf.interop import magenta
from musicgen_tf.latent import decode_pieces, encoder_windows
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.train.trainer import load_trained_model

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "magenta"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").is_file())


def fixture(name):
    folder = FIXTURES / name
    return folder, json.loads((folder / "expected.json").read_text()), dict(np.load(folder / "expected.npz"))


@pytest.fixture(scope="module", params=NAMES)
def imported(request, tmp_path_factory):
    """(fixture name, folder, expected, arrays, run) with the fixture's checkpoint imported into a run directory."""
    name = request.param
    folder, expected, arrays = fixture(name)
    run_dir = tmp_path_factory.mktemp(name) / "run"
    config = magenta.import_checkpoint(expected["magenta_config"], str(folder / "model.ckpt"), str(run_dir))
    hparams = expected["hparams"]  # the fixture's shrunk sizes, read back from the checkpoint
    sizes = {"encoder_units": hparams["enc_rnn_size"], "decoder_units": hparams["dec_rnn_size"],
             "latent_dim": hparams["z_size"]}
    if name.startswith("hierdec"):
        sizes["conductor_units"] = hparams["dec_rnn_size"]  # Magenta's conductor uses dec_rnn_size too
    assert config["imported_from"]["sizes"] == sizes
    assert config["imported_from"]["global_step"] == 12345
    return name, folder, expected, arrays, load_trained_model(str(run_dir))


def test_fixtures_cover_every_model_family():
    assert set(magenta.SUPPORTED) - set(NAMES) == {"cat-drums_2bar_big", "flat-mel_16bar"}  # other sizes only


def test_encode_equals_magentas_mu_and_sigma(imported):
    name, folder, expected, arrays, run = imported
    windows = np.stack([window for item in expected["inputs"] for window in
                        encoder_windows(run.converter, midi_file_to_note_sequence(str(folder / item["midi"])))])
    # Our converter cuts the same windows, in the same order, with the same (corrupted, for GrooVAE) inputs.
    windows = windows.astype(np.float32)  # (as the fixture stores them)
    np.testing.assert_array_equal(windows, arrays["window_inputs"])
    mu, sigma = run.model.encode_inputs(windows)
    np.testing.assert_allclose(mu, arrays["mu"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(sigma, arrays["sigma"], rtol=1e-4, atol=1e-6)


def test_greedy_decode_writes_magentas_notes(imported):
    name, folder, expected, arrays, run = imported
    pieces = decode_pieces(run, arrays["z"], temperature=0.0)
    for index, (piece, reference) in enumerate(zip(pieces, expected["decode"])):
        ours = sorted(piece.notes, key=lambda n: (n.start_time, n.pitch))
        assert len(ours) == len(reference["notes"]), (name, index)
        for note, ref in zip(ours, reference["notes"]):
            assert (note.pitch, note.velocity, note.is_drum) == (ref["pitch"], ref["velocity"], ref["is_drum"]), \
                (name, index, note, ref)
            np.testing.assert_allclose([note.start_time, note.end_time], [ref["start"], ref["end"]], atol=1e-5)


def test_decoder_outputs_equal_magentas(imported):
    """The raw decoder outputs along the greedy path (a finer check than the notes)."""
    name, folder, expected, arrays, run = imported
    z = tf.constant(arrays["z"])
    decoded = run.model.decode(z, temperature=0.0)
    # Teacher forcing on the greedy path; a copy without scheduled sampling (which would sample outside training).
    model = type(run.model).from_config({**run.model.get_config(), "sampling_schedule": "constant",
                                         "sampling_rate": 0.0})
    model.set_weights(run.model.get_weights())
    targets = model._targets(decoded if isinstance(decoded, dict) else {"tokens": decoded})
    logits = model._decode_teacher_forced(targets, model._conditioning(z, None)).numpy()
    np.testing.assert_allclose(logits, arrays["rnn_output"].astype(np.float32), rtol=2e-3, atol=2e-3)


def test_supported_presets_use_magentas_converter_settings():
    """Each supported config's preset reads data as Magenta's config does (the converters' Magenta presets)."""
    from musicgen_tf.configs import get_preset
    from musicgen_tf.music.representations import get_converter

    for name in magenta.SUPPORTED:
        preset = get_preset(name)
        ours = get_converter(preset.representation, **preset.converter_params)
        assert ours == type(ours).from_preset(name), name


# -- refusals ---------------------------------------------------------------------------------------------------------

def _checkpoint_values(name="cat-mel_2bar_small"):
    reader = tf.train.load_checkpoint(str(FIXTURES / name / "model.ckpt"))
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}


def _write_checkpoint(values, prefix):
    """A TF1 (name-keyed) checkpoint, as Magenta's Saver writes them."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        variables = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver(variables).save(session, prefix)


def _assert_nothing_written(tmp_path):
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update({"decoder/output_projection/bias": np.zeros([91], np.float32)}),
     "'decoder/output_projection/bias' has shape \\[91\\], this config needs \\[90\\]"),
    (lambda v: v.update({"encoder/cell_0/bidirectional_rnn/bw/multi_rnn_cell/cell_0/lstm_cell/kernel":
                         np.zeros([106, 60], np.float32)}),
     "'encoder/cell_0/bidirectional_rnn/bw/multi_rnn_cell/cell_0/lstm_cell/kernel' has shape \\[106, 60\\]"),
    (lambda v: v.update({"decoder/extra_layer/kernel": np.zeros([2, 2], np.float32)}),
     "'decoder/extra_layer/kernel'.*unmapped"),
    (lambda v: v.pop("encoder/mu/kernel"), "no variable 'encoder/mu/kernel'"),
])
def test_bad_checkpoints_are_refused_naming_the_variable_and_nothing_is_written(tmp_path, change, message):
    values = _checkpoint_values()
    change(values)
    _write_checkpoint(values, str(tmp_path / "bad" / "model.ckpt"))
    with pytest.raises(magenta.MagentaImportError, match=message):
        magenta.import_checkpoint("cat-mel_2bar_small", str(tmp_path / "bad"), str(tmp_path / "runs" / "mel"))
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("fixture_name, config, message", [
    ("cat-drums_2bar_small", "cat-mel_2bar_small", "'decoder/multi_rnn_cell/cell_0/lstm_cell/kernel' has shape"),
    ("hierdec-mel_16bar", "cat-mel_2bar_small",
     "no variable 'decoder/multi_rnn_cell/cell_0/lstm_cell/bias', which cat-mel_2bar_small needs"),
])
def test_a_checkpoint_of_another_config_is_refused(tmp_path, fixture_name, config, message):
    with pytest.raises(magenta.MagentaImportError, match=message):
        magenta.import_checkpoint(config, str(FIXTURES / fixture_name / "model.ckpt"), str(tmp_path / "runs" / "r"))
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("config, reason", [("hierdec-trio_16bar", "trio"), ("nade-drums_2bar_full", "NADE"),
                                            ("hier-multiperf_vel_1bar_med", "multi-instrument"),
                                            ("cat-mel_2bar_med_chords", "chord-conditioned"),
                                            ("no-such-config", "unknown Magenta config")])
def test_unsupported_configs_are_refused_with_the_reason(tmp_path, config, reason):
    with pytest.raises(magenta.MagentaImportError, match=f"{config}.*{reason}|{reason}.*{config}"):
        magenta.import_checkpoint(config, str(FIXTURES / "cat-mel_2bar_small" / "model.ckpt"),
                                  str(tmp_path / "runs" / "r"))
    _assert_nothing_written(tmp_path)


def test_a_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    from musicgen_tf.models.music_vae import MusicVAE

    def fail(self, path):
        open(path, "wb").write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(MusicVAE, "save_weights", fail)
    with pytest.raises(OSError, match="disk full"):
        magenta.import_checkpoint("cat-mel_2bar_small", str(FIXTURES / "cat-mel_2bar_small" / "model.ckpt"),
                                  str(tmp_path / "runs" / "mel"))
    _assert_nothing_written(tmp_path)


def test_an_existing_run_directory_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}")
    with pytest.raises(magenta.MagentaImportError, match="not empty"):
        magenta.import_checkpoint("cat-mel_2bar_small", str(FIXTURES / "cat-mel_2bar_small" / "model.ckpt"),
                                  str(run_dir))
    assert (run_dir / "config.json").read_text() == "{}"


def test_tar_bundle_and_folder_are_accepted(tmp_path):
    folder = FIXTURES / "cat-drums_2bar_small"
    bundle = tmp_path / "cat-drums_2bar_small.tar"
    with tarfile.open(bundle, "w") as tar:
        for path in folder.glob("model.ckpt*"):
            tar.add(path, arcname=f"cat-drums_2bar_small/{path.name}")
    config = magenta.import_checkpoint("cat-drums_2bar_small", str(bundle), str(tmp_path / "from_tar"))
    assert config["imported_from"]["global_step"] == 12345
    copy = tmp_path / "ckpt_folder"
    shutil.copytree(folder, copy)
    magenta.import_checkpoint("cat-drums_2bar_small", str(copy), str(tmp_path / "from_folder"))
    weights = [load_trained_model(str(tmp_path / d)).model.get_weights() for d in ("from_tar", "from_folder")]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


# -- the commands -----------------------------------------------------------------------------------------------------

def _notes(path):
    """(pitch, velocity, start) of a MIDI file's notes, by pitch then time (MIDI ticks move times by < 1.2 ms, which
    could reorder near-simultaneous drum hits sorted by time)."""
    ns = midi_file_to_note_sequence(str(path))
    return sorted((n.pitch, n.velocity, n.start_time) for n in ns.notes)


@pytest.mark.parametrize("name", ["cat-mel_2bar_small", "groovae_2bar_humanize"])
def test_import_encode_decode_commands(tmp_path, capsys, name):
    folder, expected, arrays = fixture(name)
    run_dir = str(tmp_path / "run")
    assert main(["import-magenta", "--config", name, "--checkpoint", str(folder / "model.ckpt"),
                 "--run-dir", run_dir]) == 0
    assert f"imported Magenta {name} (global step 12345)" in capsys.readouterr().out

    assert main(["encode", str(folder / "input-0.mid"), "--run-dir", run_dir, "--json"]) == 0
    windows = json.loads(capsys.readouterr().out)["windows"]
    count = expected["inputs"][0]["windows"]
    assert len(windows) == count and set(windows[0]) == {"input", "mu", "sigma"}
    # the converter's own tensors: one-hot melodies are bool (JSON true/false), GrooVAE inputs float
    assert type(windows[0]["input"][0][0]) is (float if name.startswith("groovae") else bool)
    np.testing.assert_array_equal(np.asarray([w["input"] for w in windows], np.float32),
                                  arrays["window_inputs"][:count])
    np.testing.assert_allclose([w["mu"] for w in windows], arrays["mu"][:count], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([w["sigma"] for w in windows], arrays["sigma"][:count], rtol=1e-4, atol=1e-6)
    assert main(["encode", str(folder / "input-0.mid"), "--run-dir", run_dir]) == 0
    assert f"window {count - 1} sigma" in capsys.readouterr().out

    (tmp_path / "z.json").write_text(json.dumps({"z": arrays["z"].tolist()}))
    assert main(["decode", "--run-dir", run_dir, "--z", str(tmp_path / "z.json"), "--temperature", "0",
                 "--out", str(tmp_path / "out")]) == 0
    written = sorted((tmp_path / "out").glob("*.mid"))
    assert [p.name for p in written] == [f"decode-{i:02d}.mid" for i in range(len(arrays["z"]))]
    for path, reference in zip(written, expected["decode"]):
        ours = _notes(path)
        # (a GrooVAE hit played early on the first step starts before 0; a MIDI file starts it at 0)
        theirs = sorted((n["pitch"], n["velocity"], max(n["start"], 0.0)) for n in reference["notes"])
        assert [note[:2] for note in ours] == [note[:2] for note in theirs]
        np.testing.assert_allclose([note[2] for note in ours], [note[2] for note in theirs], atol=2e-3)


def test_decode_refuses_z_of_the_wrong_size(tmp_path, capsys):
    folder, expected, arrays = fixture("cat-mel_2bar_small")
    magenta.import_checkpoint("cat-mel_2bar_small", str(folder / "model.ckpt"), str(tmp_path / "run"))
    (tmp_path / "z.json").write_text(json.dumps({"z": [[0.0] * 5]}))
    assert main(["decode", "--run-dir", str(tmp_path / "run"), "--z", str(tmp_path / "z.json"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "z has shape [1, 5], the model needs [N, 8]" in capsys.readouterr().err


def test_import_magenta_refusal_is_a_clean_cli_error(tmp_path, capsys):
    assert main(["import-magenta", "--config", "hierdec-trio_16bar", "--checkpoint", str(tmp_path),
                 "--run-dir", str(tmp_path / "run")]) == 2
    assert "hierdec-trio_16bar" in capsys.readouterr().err and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_generate_interpolate_reconstruct_work_on_an_imported_run(tmp_path):
    from musicgen_tf import generation

    folder, expected, arrays = fixture("cat-drums_2bar_small")
    run_dir = str(tmp_path / "run")
    magenta.import_checkpoint("cat-drums_2bar_small", str(folder / "model.ckpt"), run_dir)
    midi = str(folder / "input-0.mid")
    for results in (generation.generate(run_dir, str(tmp_path / "g"), num=1, seed=0),
                    generation.interpolate(run_dir, midi, str(folder / "input-1.mid"), str(tmp_path / "i"), steps=2),
                    generation.reconstruct(run_dir, midi, str(tmp_path / "r"))):
        assert results and all(Path(path).is_file() for paths in results for path in paths.values())


@pytest.mark.slow
def test_export_works_on_an_imported_run(tmp_path):
    from musicgen_tf.serving.export import export, read_metadata

    run_dir = str(tmp_path / "run")
    magenta.import_checkpoint("cat-mel_2bar_small", str(FIXTURES / "cat-mel_2bar_small" / "model.ckpt"), run_dir)
    path = export(run_dir, str(tmp_path / "models"), "mel")
    assert read_metadata(path)["preset"]["name"] == "cat-mel_2bar_small"


def test_a_refused_tar_bundle_is_named_in_the_error(tmp_path):
    bundle = tmp_path / "cat-drums_2bar_small.tar"
    with tarfile.open(bundle, "w") as tar:
        for path in (FIXTURES / "cat-drums_2bar_small").glob("model.ckpt*"):
            tar.add(path, arcname=f"cat-drums_2bar_small/{path.name}")
    with pytest.raises(magenta.MagentaImportError,
                       match=f"{bundle} \\(cat-drums_2bar_small/model.ckpt\\): variable 'decoder/"):
        magenta.import_checkpoint("cat-mel_2bar_small", str(bundle), str(tmp_path / "runs" / "mel"))
    _assert_nothing_written(tmp_path)


def test_a_folder_with_several_checkpoints_needs_the_checkpoint_state_file(tmp_path):
    for stem in ("model.ckpt-100", "model.ckpt-200"):
        for path in (FIXTURES / "cat-mel_2bar_small").glob("model.ckpt.*"):
            shutil.copy(path, tmp_path / path.name.replace("model.ckpt", stem))
    with pytest.raises(magenta.MagentaImportError, match="expected one TF checkpoint .* found 2"):
        magenta.resolve_checkpoint(str(tmp_path), str(tmp_path))
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-200"\n')
    assert magenta.resolve_checkpoint(str(tmp_path), str(tmp_path)) == str(tmp_path / "model.ckpt-200")
    assert magenta.resolve_checkpoint(str(tmp_path / "model.ckpt-100.index"), "") == str(tmp_path / "model.ckpt-100")


def test_reconstruct_of_an_imported_groovae_encodes_as_magenta(tmp_path):
    """GrooVAE's reconstruct encodes the converter's (tapped, fixed-velocity) input, as Magenta's inference mode:
    the fixture's first z is Magenta's mu of input-0's first window, so the reconstruction is Magenta's decode."""
    from musicgen_tf import generation

    folder, expected, arrays = fixture("groovae_2bar_tap_fixed_velocity")
    np.testing.assert_allclose(arrays["z"][0], arrays["mu"][0])
    run_dir = str(tmp_path / "run")
    magenta.import_checkpoint("groovae_2bar_tap_fixed_velocity", str(folder / "model.ckpt"), run_dir)
    results = generation.reconstruct(run_dir, str(folder / "input-0.mid"), str(tmp_path / "r"))
    ours = _notes(results[1]["mid"])  # (results[0] is the input)
    theirs = sorted((n["pitch"], n["velocity"], max(n["start"], 0.0)) for n in expected["decode"][0]["notes"])
    assert [note[:2] for note in ours] == [note[:2] for note in theirs]
    np.testing.assert_allclose([note[2] for note in ours], [note[2] for note in theirs], atol=2e-3)

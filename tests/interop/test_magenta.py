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

from musicgen_tf.interop import magenta
from musicgen_tf.latent import decode_pieces, encode_file, encoder_windows
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.train.trainer import load_trained_model

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "magenta"
NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").is_file())


def fixture(name):
    folder = FIXTURES / name
    expected = json.loads((folder / "expected.json").read_text())
    arrays = dict(np.load(folder / "expected.npz"))
    hparams = expected["hparams"]
    overrides = {"encoder_units": hparams["enc_rnn_size"], "decoder_units": hparams["dec_rnn_size"],
                 "latent_dim": hparams["z_size"]}
    if name.startswith("hierdec"):
        overrides["conductor_units"] = hparams["dec_rnn_size"]  # Magenta's conductor uses dec_rnn_size
    return folder, expected, arrays, overrides


@pytest.fixture(scope="module", params=NAMES)
def imported(request, tmp_path_factory):
    """(fixture name, folder, expected, arrays, run) with the fixture's checkpoint imported into a run directory."""
    name = request.param
    folder, expected, arrays, overrides = fixture(name)
    run_dir = tmp_path_factory.mktemp(name) / "run"
    magenta.import_checkpoint(expected["magenta_config"], str(folder / "model.ckpt"), str(run_dir), overrides)
    return name, folder, expected, arrays, load_trained_model(str(run_dir))


def test_fixtures_cover_every_model_family():
    assert {"cat-mel_2bar_small", "hierdec-mel_16bar", "cat-drums_2bar_small", "groovae_2bar_humanize"} <= set(NAMES)


def test_encode_equals_magentas_mu_and_sigma(imported):
    name, folder, expected, arrays, run = imported
    windows = [encoder_windows(run.converter, midi_file_to_note_sequence(str(folder / item["midi"])))
               for item in expected["inputs"]]
    # Our converter cuts the same windows, in the same order, with the same (corrupted, for GrooVAE) inputs.
    np.testing.assert_array_equal(np.concatenate(windows), arrays["window_inputs"])
    mu, sigma = run.model.encode_inputs(np.concatenate(windows))
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


def test_encode_command_json_lists_every_window(tmp_path):
    folder, expected, arrays, overrides = fixture("cat-mel_2bar_small")
    magenta.import_checkpoint("cat-mel_2bar_small", str(folder / "model.ckpt"), str(tmp_path / "run"), overrides)
    result = encode_file(str(tmp_path / "run"), str(folder / expected["inputs"][0]["midi"]))
    count = expected["inputs"][0]["windows"]
    assert len(result["windows"]) == count
    np.testing.assert_array_equal(np.asarray([w["input"] for w in result["windows"]]),
                                  arrays["window_inputs"][:count])
    np.testing.assert_allclose([w["mu"] for w in result["windows"]], arrays["mu"][:count], rtol=1e-4, atol=1e-6)


# -- refusals ---------------------------------------------------------------------------------------------------------

def _copy_checkpoint(tmp_path, name="cat-mel_2bar_small"):
    folder, expected, arrays, overrides = fixture(name)
    reader = tf.train.load_checkpoint(str(folder / "model.ckpt"))
    values = {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()}
    return values, overrides


def _write_checkpoint(values, prefix):
    """A TF1-style (name-keyed) checkpoint of plain variables."""
    variables = {name: tf.Variable(value, name=name.replace("/", "_")) for name, value in values.items()}
    writer = tf.train.Checkpoint()
    # tf.train.Checkpoint keys by object graph; a name-based checkpoint needs the v1 saver.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        graph_vars = [tf.compat.v1.Variable(value, name=name) for name, value in values.items()]
        session.run(tf.compat.v1.global_variables_initializer())
        tf.compat.v1.train.Saver(graph_vars).save(session, prefix)
    del variables, writer


@pytest.mark.parametrize("change, message", [
    (lambda v: v.update({"decoder/output_projection/bias": np.zeros([91], np.float32)}),
     "'decoder/output_projection/bias' has shape \\[91\\]"),
    (lambda v: v.update({"decoder/extra_layer/kernel": np.zeros([2, 2], np.float32)}),
     "'decoder/extra_layer/kernel'.*unmapped"),
    (lambda v: v.pop("encoder/mu/kernel"), "no variable 'encoder/mu/kernel'"),
])
def test_bad_checkpoints_are_refused_and_nothing_is_written(tmp_path, change, message):
    values, overrides = _copy_checkpoint(tmp_path)
    change(values)
    _write_checkpoint(values, str(tmp_path / "bad" / "model.ckpt"))
    run_dir = tmp_path / "runs" / "mel"
    with pytest.raises(magenta.MagentaImportError, match=message):
        magenta.import_checkpoint("cat-mel_2bar_small", str(tmp_path / "bad"), str(run_dir), overrides)
    assert not run_dir.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_preset_sized_import_refuses_a_shrunk_checkpoint(tmp_path):
    folder, _, _, _ = fixture("cat-mel_2bar_small")
    with pytest.raises(magenta.MagentaImportError, match="has shape .* this config needs"):
        magenta.import_checkpoint("cat-mel_2bar_small", str(folder / "model.ckpt"), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("config, reason", [("hierdec-trio_16bar", "trio"), ("nade-drums_2bar_full", "NADE"),
                                            ("hier-multiperf_vel_1bar_med", "multi-instrument"),
                                            ("no-such-config", "unknown Magenta config")])
def test_unsupported_configs_are_refused_with_the_reason(tmp_path, config, reason):
    with pytest.raises(magenta.MagentaImportError, match=reason):
        magenta.import_checkpoint(config, str(tmp_path), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_tar_bundle_and_folder_are_accepted(tmp_path):
    folder, expected, arrays, overrides = fixture("cat-drums_2bar_small")
    bundle = tmp_path / "cat-drums_2bar_small.tar"
    with tarfile.open(bundle, "w") as tar:
        for path in folder.glob("model.ckpt*"):
            tar.add(path, arcname=f"cat-drums_2bar_small/{path.name}")
    config = magenta.import_checkpoint("cat-drums_2bar_small", str(bundle), str(tmp_path / "from_tar"), overrides)
    assert config["imported_from"]["global_step"] == 12345
    copy = tmp_path / "ckpt_folder"
    shutil.copytree(folder, copy)
    magenta.import_checkpoint("cat-drums_2bar_small", str(copy), str(tmp_path / "from_folder"), overrides)
    weights = [load_trained_model(str(tmp_path / d)).model.get_weights() for d in ("from_tar", "from_folder")]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)

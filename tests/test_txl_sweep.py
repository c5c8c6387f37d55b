"""`musicgen evaluate --sweep` on a tiny random Transformer-XL run and a small grid."""

import json

import numpy as np
import pytest

from musicgen_tf import cli, txl_sweep
from musicgen_tf.configs import get_preset
from musicgen_tf.models.builders import build_model
from musicgen_tf.music.metrics import evaluate_midi_dir
from musicgen_tf.music.remi import RemiConverter
from musicgen_tf.train.run_dir import RunDir
from tests import fixtures


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory holding an untrained tiny remi_txl_pop (what `musicgen train` writes, minus the training)."""
    import keras

    keras.utils.set_random_seed(5)
    root = tmp_path_factory.mktemp("sweep")
    preset = get_preset("remi_txl_pop").resolved(tiny=True)
    schema = {"features": {"tokens": {"dtype": "int64", "shape": [None]}}, "labels": {}}
    representation = RemiConverter().get_config()
    run = RunDir(root / "run")
    run.path.mkdir(parents=True)
    run.write_config({"preset": preset.to_json(), "data_representation": representation, "data_schema": schema})
    model = build_model(preset, {"representation": representation, **schema})
    model.save_weights(str(run.final_weights))
    reference = root / "reference"
    for index in range(2):
        fixtures.write_midi(reference / f"song_{index}.mid", fixtures.melody_notes(2))
    return run.path, reference


def test_sweep_tabulates_each_setting_against_the_reference(tiny_run, tmp_path, capsys):
    run_dir, reference = tiny_run
    result = txl_sweep.sweep(str(run_dir), str(reference), str(tmp_path / "out"), temperatures=[1.0],
                             top_ks=[5, 30], num=2, bars=2, seed=1, max_tokens=48)
    assert [(s["temperature"], s["top_k"]) for s in result["settings"]] == [(1.0, 5), (1.0, 30)]
    expected_reference = evaluate_midi_dir(reference)["mean"]
    assert result["reference"]["files"] == 2
    assert result["reference"]["H4"] == pytest.approx(expected_reference["H4"])
    assert "SI_short" in result["metrics"]
    for setting in result["settings"]:
        folder = tmp_path / "out" / f"t1_k{setting['top_k']}"
        assert len(list(folder.glob("*.mid"))) == setting["pieces"] == 2
        for name in ("H1", "GS"):
            if not np.isnan(setting["mean"][name]):
                assert setting["distance"][name] == pytest.approx(abs(setting["mean"][name]
                                                                      - result["reference"][name]))
    txl_sweep.print_sweep(result)
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["setting", "H1", "H4"] and table[1].startswith("reference")
    assert sum(line.startswith("T=1 k=") for line in table) == 2


def test_sweep_command_line(tiny_run, tmp_path, capsys):
    run_dir, reference = tiny_run
    code = cli.main(["evaluate", "--sweep", "--run-dir", str(run_dir), "--reference", str(reference),
                     "--out", str(tmp_path / "cli"), "--temperatures", "0.8", "--top-ks", "10", "--num", "1",
                     "--bars", "2", "--max-tokens", "40", "--no-si", "--json"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert [(s["temperature"], s["top_k"]) for s in printed["settings"]] == [(0.8, 10)]
    assert "SI_short" not in printed["metrics"]
    assert cli.main(["evaluate", "--sweep", "--run-dir", str(run_dir)]) == 2  # no --reference: a clear error
    assert "--reference" in capsys.readouterr().err

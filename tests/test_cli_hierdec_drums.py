"""Seed 001's system end to end: 16-bar Groove drums -> the hierarchical MusicVAE preset -> samples."""

import json

import pytest

from musicgen_tf.cli import main
from musicgen_tf.configs import get_preset
from tests import fixtures


def test_hierdec_drums_16bar_preset_has_seed_001s_sizes():
    preset = get_preset("hierdec-drums_16bar")
    assert preset.representation == "drums" and dict(preset.converter_params)["slice_bars"] == 16
    model = preset.model
    assert (model["encoder_units"], model["latent_dim"], model["conductor_units"], model["decoder_units"],
            model["level_lengths"], model["decoder"]) == ((2048, 2048), 512, (1024, 1024), (1024, 1024), (16, 16),
                                                          "hierarchical")


@pytest.mark.slow
def test_groove_preprocess_train_generate_with_hierdec_drums_16bar(tmp_path):
    records = str(fixtures.groove_records(tmp_path, bars=16, preset="hierdec-drums_16bar", num_shards=1))
    run = str(tmp_path / "run")
    manifest = json.loads((tmp_path / "records" / "manifest.json").read_text())
    assert manifest["representation"]["name"] == "drums"
    assert manifest["features"]["tokens"]["shape"] == [256]  # 16 bars of 16 steps
    assert manifest["splits"]["train"]["examples"] >= 2
    assert main(["train", "--preset", "hierdec-drums_16bar", "--tiny", "--data", records, "--run-dir", run,
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["preset"]["model"]["level_lengths"] == [16, 16]
    assert main(["generate", "--run-dir", run, "--num", "1", "--seed", "1", "--out", str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "sample-00.mid").is_file()

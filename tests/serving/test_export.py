"""SavedModel export of tiny trained runs: signatures, reload in a TensorFlow-only process, equality with Keras."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from musicgen_tf.serving.commands import add_export_arguments, run_export
from musicgen_tf.serving.export import ExportError, check, export, read_metadata, serving_module_class
from musicgen_tf.train.trainer import load_trained_model
from tests import serving

pytestmark = pytest.mark.slow

SIGNATURES = {
    "melody": {"sample", "encode", "decode", "interpolate", "musicgen_config"},
    "groove": {"sample", "encode", "decode", "interpolate", "musicgen_config"},
    "beta_melody": {"sample", "encode", "decode", "interpolate", "continue_melody", "musicgen_config"},
}


@pytest.mark.parametrize("kind", sorted(SIGNATURES))
def test_export_reloads_without_project_code_and_matches_keras(kind):
    export_dir, path = serving.exported(kind)
    assert Path(path) == Path(export_dir) / kind.replace("_", "-") / "1"
    metadata = read_metadata(path)
    assert set(metadata["signatures"]) == SIGNATURES[kind]
    assert metadata["converter"]["name"] == serving.RUNS[kind][1]
    report = check(path)  # raises on any difference above 1e-5
    assert set(report["signatures"]) == SIGNATURES[kind] == set(report["reloaded_signatures"])
    assert report["max_abs_diff"] <= 1e-5
    if kind == "groove":
        assert report["signatures"]["sample"]["outputs"]["hits"]["shape"] == [2, 32, 9]
    else:
        assert report["signatures"]["sample"]["outputs"]["tokens"]["dtype"] == (
            "int32" if kind == "melody" else "int64")


def test_saved_model_cli_lists_the_signatures():
    _, path = serving.exported("groove")
    result = subprocess.run([str(Path(sys.executable).parent / "saved_model_cli"), "show", "--all", "--dir", path],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in SIGNATURES["groove"]:
        assert f"signature_def['{name}']" in result.stdout
    sample = result.stdout.split("signature_def['sample']")[1].split("signature_def[")[0]
    assert "inputs['num'] tensor_info:\n        dtype: DT_INT32\n        shape: ()" in sample
    assert "inputs['seed'] tensor_info:\n        dtype: DT_INT64\n        shape: (2)" in sample
    assert "outputs['velocities'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 32, 9)" in sample


def test_models_config_and_metadata_files():
    for kind in SIGNATURES:
        export_dir, _ = serving.exported(kind)
    text = (Path(export_dir) / "models.config").read_text()
    assert text.startswith("model_config_list {")
    for name in ("melody", "groove", "beta-melody"):
        assert f'name: "{name}"\n    base_path: "/models/{name}"\n    model_platform: "tensorflow"' in text
    metadata = json.loads((Path(export_dir) / "beta-melody/1/assets.extra/musicgen.json").read_text())
    assert metadata["preset"]["name"] == "beta_vae_melody" and metadata["family"] == "beta_vae"
    prompt = metadata["signatures"]["continue_melody"]["inputs"]["prompt"]
    assert prompt["dtype"] == "int64" and prompt["shape"] == [-1] and prompt["doc"]


def test_existing_version_is_refused_and_a_new_one_added(tmp_path):
    run_dir = serving.trained_run("melody")
    export(run_dir, str(tmp_path), "mel", version=1)
    with pytest.raises(ExportError, match="exists; pass a higher --version"):
        export(run_dir, str(tmp_path), "mel", version=1)
    parser = argparse.ArgumentParser()
    add_export_arguments(parser)
    args = parser.parse_args(["--run-dir", run_dir, "--export-dir", str(tmp_path), "--name", "mel", "--version",
                              "2", "--serving-root", "/srv/models"])
    assert run_export(args) == 0
    assert sorted(p.name for p in (tmp_path / "mel").iterdir()) == ["1", "2"]  # no staging folder left behind
    assert 'base_path: "/srv/models/mel"' in (tmp_path / "models.config").read_text()
    with pytest.raises(ExportError, match="use letters, digits"):
        export(run_dir, str(tmp_path), "../evil")


def test_check_reports_a_model_that_differs(tmp_path):
    _, path = serving.exported("melody")
    changed = tmp_path / "changed-run"
    shutil.copytree(serving.trained_run("melody"), changed)
    run = load_trained_model(str(changed))
    run.model.set_weights([w + 0.05 for w in run.model.get_weights()])
    run.model.save_weights(str(changed / "model.weights.h5"))
    with pytest.raises(ExportError, match=r"signature '\w+' output '\w+' differs from the Keras model"):
        check(path, str(changed), str(changed / "model.weights.h5"))


def test_unknown_family_says_which_can_be_exported():
    with pytest.raises(ExportError, match=r"no SavedModel export for model family 'no_such_family'.*'beta_vae', "
                                          r"'music_vae', 'resnet_cvae', 'transformer_xl'"):
        serving_module_class("no_such_family")

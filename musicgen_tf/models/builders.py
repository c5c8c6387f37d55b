"""Preset + data manifest -> model, and model outputs -> converter examples, per model family.

The model reads its sizes (vocabulary, sequence length, drum classes, labels) from the manifest that the
converter wrote, never from numbers copied into a preset.
"""

from __future__ import annotations

import keras
import numpy as np

from musicgen_tf.configs import Preset


def _sequence_length(manifest: dict, feature: str) -> int:
    return int(manifest["features"][feature]["shape"][0])


def _label_kwargs(preset: Preset, manifest: dict) -> dict:
    if preset.label is None:
        return {}
    labels = manifest.get("labels", {})
    if preset.label not in labels or "vocabulary" not in labels[preset.label]:
        raise ValueError(f"preset {preset.name!r} is conditioned on label {preset.label!r}, which the data does not "
                         f"have as a string label (it has {sorted(labels)})")
    return {"num_labels": len(labels[preset.label]["vocabulary"]), "label_key": preset.label}


def build_model(preset: Preset, manifest: dict) -> keras.Model:
    """A fresh, uncompiled model for `preset` sized from the data manifest."""
    if preset.family == "music_vae":
        return _build_music_vae(preset, manifest)
    if preset.family == "beta_vae":
        return _build_beta_vae(preset, manifest)
    if preset.family == "resnet_cvae":
        return _build_resnet_cvae(preset, manifest)
    if preset.family == "transformer_xl":
        return _build_transformer_xl(preset, manifest)
    raise ValueError(f"no builder for model family {preset.family!r}")


def _build_music_vae(preset: Preset, manifest: dict) -> keras.Model:
    from musicgen_tf.models.music_vae import MusicVAE
    from musicgen_tf.music.representations import converter_from_config

    converter = converter_from_config(manifest["representation"])
    kwargs = dict(preset.model, **_label_kwargs(preset, manifest))
    if preset.representation == "groovae":
        from musicgen_tf.models.groove_inputs import encoder_corruption

        kwargs.update(output_kind="groove", num_classes=int(manifest["features"]["hits"]["shape"][1]),
                      seq_len=_sequence_length(manifest, "hits"), encoder_corruption=encoder_corruption(converter))
    elif preset.representation == "drums":
        kwargs.update(output_kind="categorical", vocab_size=converter.output_depth,
                      num_classes=converter.num_classes, drum_roll_input=True,
                      seq_len=_sequence_length(manifest, "tokens"))
    else:
        kwargs.update(output_kind="categorical", vocab_size=converter.output_depth,
                      seq_len=_sequence_length(manifest, "tokens"))
    return MusicVAE(**kwargs)


def dummy_batch(manifest: dict, batch_size: int = 1) -> dict:
    """Zeros shaped like one parsed batch (fixed-length features), to create a model's variables."""
    dtypes = {"int64": "int64", "float32": "float32"}
    batch = {name: np.zeros([batch_size] + [d or 1 for d in spec["shape"]], dtype=dtypes[spec["dtype"]])
             for name, spec in manifest["features"].items() if spec["dtype"] in dtypes}
    for name, label in manifest.get("labels", {}).items():
        if "vocabulary" in label:
            batch[f"{name}_id"] = np.zeros([batch_size], dtype="int64")
    return batch


def outputs_to_examples(outputs) -> list[dict[str, np.ndarray]]:
    """Batched model outputs (tokens [n, T] or a dict of [n, ...] arrays) -> one converter example per row."""
    if isinstance(outputs, dict):
        arrays = {name: np.asarray(value) for name, value in outputs.items()}
        return [{name: array[i] for name, array in arrays.items()} for i in range(len(next(iter(arrays.values()))))]
    return [{"tokens": row} for row in np.asarray(outputs)]


def _build_beta_vae(preset: Preset, manifest: dict) -> keras.Model:
    """Pitch-histogram β-VAE (input size from the manifest) or melody-window β-VAE (vocabulary, PAD and "/" ids
    from the converter)."""
    from musicgen_tf.models.beta_vae import MelodyBetaVAE, PitchHistogramBetaVAE
    from musicgen_tf.music.representations import converter_from_config

    kwargs = dict(preset.model)
    if preset.representation == "pitch_histogram":
        return PitchHistogramBetaVAE(input_dim=int(manifest["features"]["histogram"]["shape"][0]), **kwargs)
    if preset.representation == "melody_timeseries":
        from musicgen_tf.music.melody_timeseries import DELIMITER, PAD

        converter = converter_from_config(manifest["representation"])
        return MelodyBetaVAE(vocab_size=converter.vocab_size, pad_id=converter.symbols.index(PAD),
                             delimiter_id=converter.symbols.index(DELIMITER), **kwargs)
    raise ValueError(f"the beta_vae family has no model for representation {preset.representation!r}")


def _build_resnet_cvae(preset: Preset, manifest: dict) -> keras.Model:
    """Resnet1D CVAE: frame length from the manifest's audio feature; conditioned on the preset's label only when
    the data has more than one value of it (one genre: nothing to condition on)."""
    from musicgen_tf.models.resnet_cvae import ResnetCVAE

    label = _label_kwargs(preset, manifest)
    if label.get("num_labels", 0) <= 1:
        label = {}
    return ResnetCVAE(frame_length=_sequence_length(manifest, "audio"), **dict(preset.model), **label)


def _build_transformer_xl(preset: Preset, manifest: dict) -> keras.Model:
    """REMI Transformer-XL; vocabulary and special ids from the converter."""
    from musicgen_tf.models.transformer_xl import TransformerXL
    from musicgen_tf.music.remi import BAR
    from musicgen_tf.music.representations import converter_from_config

    converter = converter_from_config(manifest["representation"])
    model = TransformerXL(vocab_size=converter.vocab_size, pad_id=converter.pad_id, eos_id=converter.eos_id,
                          bar_id=converter.vocab.token_to_id(BAR), **dict(preset.model))
    model.build()  # every weight comes from the config (BackupAndRestore needs a built model)
    return model

"""Named presets, one registry (like Magenta's CONFIG_MAP): model + data representation + training settings.

A preset names its model family, the representation it trains on (with the converter parameters it needs; sizes
such as vocabulary and sequence length are read from the converter, never copied here), the model's constructor
arguments and the training hyper-parameters.  Seed/Magenta values are the defaults; `tiny=True` shrinks a preset
to test size without changing what it computes.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping. Steps are optimizer steps; an "epoch" is `steps_per_epoch` steps."""

    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "exponential"  # constant | exponential (Magenta: decay_rate per step to a floor) | cosine | step
    decay_rate: float = 0.9999  # exponential: per step; step: the factor applied every `decay_epochs`
    decay_epochs: int = 10  # step schedule (PyTorch StepLR's step_size, in epochs)
    min_learning_rate: float = 1e-5
    optimizer: str = "adam"  # adam | adamw
    weight_decay: float = 0.0
    clip_norm: float | None = 1.0
    # Magenta's `grad_norm_clip_to_zero`: a step whose gradients' global norm is >= this (or not finite) applies
    # all-zero gradients instead (Adam still steps, its moments decay).  None: off.
    grad_norm_clip_to_zero: float | None = None
    adam_epsilon: float = 1e-7  # Keras' default; TF1's AdamOptimizer (Magenta) uses 1e-8
    gradient_accumulation: int = 1  # optimizer steps apply the mean gradient of this many batches
    total_steps: int = 50_000
    steps_per_epoch: int = 500  # also the checkpoint period: resume restarts at the last finished epoch
    early_stopping_patience: int | None = None  # in epochs, on validation loss (training loss without one)
    sample_every_epochs: int = 5
    num_samples: int = 4
    shuffle_buffer: int = 10_000
    seed: int = 1234
    warmup_steps: int = 0  # linear warm-up from 0 to the schedule's rate over this many steps
    mixed_precision: str = "off"  # off | on | auto (on where a GPU is visible); `--mixed-precision` overrides it
    # REMI token models: train on windows of this many tokens every `window_stride` (0 = whole pieces)
    window_tokens: int = 0
    window_stride: int = 0


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    family: str  # "music_vae" (more families arrive with their issues)
    representation: str
    converter_params: Mapping[str, Any]  # the parameters the model depends on; checked against the manifest
    model: Mapping[str, Any]
    train: TrainConfig
    tiny_model: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tiny_train: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    label: str | None = None  # optional conditioning label (manifest label name), e.g. "primary_style"
    description: str = ""
    # Training-data augmentation, never applied to validation, evaluation or export (musicgen_tf.tfrecords.augment):
    # melody {"transpose_range": (-5, 5)} (Magenta's `NoteSequenceAugmenter`); remi {"pitch_shift": 6 (semitones
    # each way), "tempo_stretch": 1.2 (tempo factor in [1/x, x])}.
    augmentation: Mapping[str, Any] | None = None

    def resolved(self, tiny: bool = False, **train_overrides) -> "Preset":
        """This preset with the tiny overrides applied (if asked) and training overrides (None = keep)."""
        model = {**self.model, **(self.tiny_model if tiny else {})}
        train_changes = {**(self.tiny_train if tiny else {}),
                         **{k: v for k, v in train_overrides.items() if v is not None}}
        return dataclasses.replace(self, model=MappingProxyType(model),
                                   train=dataclasses.replace(self.train, **train_changes))

    def to_json(self) -> dict:
        return {"name": self.name, "family": self.family, "representation": self.representation,
                "converter_params": dict(self.converter_params), "model": dict(self.model),
                "train": dataclasses.asdict(self.train), "label": self.label, "description": self.description,
                "augmentation": None if self.augmentation is None else dict(self.augmentation)}


def _frozen(**kwargs) -> Mapping[str, Any]:
    return MappingProxyType(kwargs)


_VAE_TINY = _frozen(encoder_units=(32,), decoder_units=(32, 32), conductor_units=(32,), latent_dim=16,
                    embedding_dim=16)
_TINY_TRAIN = _frozen(batch_size=16, total_steps=200, steps_per_epoch=50, sample_every_epochs=2, num_samples=2,
                      shuffle_buffer=1000)
# Magenta's music_vae_train: clip_mode "global_norm" (grad_clip 1.0), gradients zeroed at global norm >= 10,000,
# tf.compat.v1.train.AdamOptimizer (epsilon 1e-8).
_MAGENTA_OPTIMIZER = _frozen(clip_norm=1.0, grad_norm_clip_to_zero=10_000.0, adam_epsilon=1e-8)
_MAGENTA_TRAIN = TrainConfig(batch_size=512, learning_rate=1e-3, decay_rate=0.9999, min_learning_rate=1e-5,
                             total_steps=200_000, steps_per_epoch=1000, **_MAGENTA_OPTIMIZER)

PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    if preset.name in PRESETS:
        raise ValueError(f"preset {preset.name!r} registered twice")
    PRESETS[preset.name] = preset
    return preset


_MEL_PROGRAMS = list(range(32))  # Magenta's MEL_PROGRAMS: piano, chromatic percussion, organ, guitar

register(Preset(
    name="cat-mel_2bar", family="music_vae", representation="melody",
    converter_params=_frozen(slice_bars=2, steps_per_quarter=4, valid_programs=_MEL_PROGRAMS),
    model=_frozen(encoder_units=(512,), decoder="flat", decoder_units=(256, 256), latent_dim=256,
                  embedding_dim=64, free_bits=0.0, max_beta=0.2, beta_rate=0.99999, dropout=0.0,
                  sampling_schedule="inverse_sigmoid", sampling_rate=1000.0),
    train=_MAGENTA_TRAIN, tiny_model=_VAE_TINY, tiny_train=_TINY_TRAIN,
    augmentation=_frozen(transpose_range=(-5, 5)),  # Magenta: NoteSequenceAugmenter(transpose_range=(-5, 5))
    description="2-bar melody MusicVAE, flat LSTM decoder (Magenta cat-mel_2bar_small)"))

register(Preset(
    name="cat-mel_2bar_cpu", family="music_vae", representation="melody",
    converter_params=_frozen(slice_bars=2, steps_per_quarter=4, valid_programs=_MEL_PROGRAMS, normalize_key=True),
    # Teacher-forced throughout (no scheduled sampling: the fused fast path).  Tunes in C (normalize_key) and a KL
    # weight of 0.5 instead of Magenta's 0.2: what made samples from the prior match the test melodies (README, "How
    # good is the demo's music"); transposition augmentation would undo the first.
    model=_frozen(encoder_units=(256,), decoder="flat", decoder_units=(256,), latent_dim=64, embedding_dim=32,
                  free_bits=0.0, max_beta=0.5, beta_rate=0.999, dropout=0.0),
    train=TrainConfig(batch_size=64, learning_rate=2e-3, decay_rate=0.999, min_learning_rate=1e-4,
                      total_steps=3000, steps_per_epoch=250, sample_every_epochs=4, num_samples=4,
                      **_MAGENTA_OPTIMIZER),
    tiny_model=_VAE_TINY, tiny_train=_TINY_TRAIN,
    description="2-bar melody MusicVAE sized to train in minutes on a CPU (the demo's model)"))

register(Preset(
    name="hierdec-mel_16bar", family="music_vae", representation="melody",
    converter_params=_frozen(slice_bars=16, steps_per_quarter=4),
    model=_frozen(encoder_units=(2048, 2048), decoder="hierarchical", conductor_units=(1024, 1024),
                  decoder_units=(1024, 1024), level_lengths=(16, 16), latent_dim=512, embedding_dim=64,
                  free_bits=256.0, max_beta=0.2, beta_rate=0.0, dropout=0.0),  # Magenta: no beta_rate -> 0
    train=_MAGENTA_TRAIN, tiny_model=_VAE_TINY, tiny_train=_TINY_TRAIN,
    description="16-bar melody MusicVAE with the hierarchical conductor decoder (seed 001 / Magenta)"))

register(Preset(
    name="cat-drums_2bar", family="music_vae", representation="drums",
    converter_params=_frozen(slice_bars=2, steps_per_quarter=4, roll_input=True),
    model=_frozen(encoder_units=(512,), decoder="flat", decoder_units=(256, 256), latent_dim=256,
                  embedding_dim=64, free_bits=48.0, max_beta=0.2, beta_rate=0.0, dropout=0.0,
                  sampling_schedule="inverse_sigmoid", sampling_rate=1000.0),
    train=_MAGENTA_TRAIN, tiny_model=_VAE_TINY, tiny_train=_TINY_TRAIN,
    description="2-bar drum MusicVAE on Magenta's 9-class drum map (cat-drums_2bar_small)"))

# Seed 001's own system: the hierarchical MusicVAE on 16-bar Groove drum sequences, with the seed's sizes
# (2-layer BiLSTM encoder 2048, z 512, conductor 2 x 1024, decoder 2 x 1024) on Magenta's 9-class drum tokens
# (roll inputs, as cat-drums_2bar).  The seed leaves the loss open: Magenta's 16-bar settings (free bits 256,
# max beta 0.2, no annealing) and Magenta's optimizer.
register(Preset(
    name="hierdec-drums_16bar", family="music_vae", representation="drums",
    converter_params=_frozen(slice_bars=16, steps_per_quarter=4, roll_input=True),
    model=_frozen(encoder_units=(2048, 2048), decoder="hierarchical", conductor_units=(1024, 1024),
                  decoder_units=(1024, 1024), level_lengths=(16, 16), latent_dim=512,
                  free_bits=256.0, max_beta=0.2, beta_rate=0.0, dropout=0.0),
    train=_MAGENTA_TRAIN, tiny_model=_VAE_TINY, tiny_train=_TINY_TRAIN,
    description="16-bar drum MusicVAE with the hierarchical conductor decoder on Groove MIDI (seed 001)"))

for _bars in (2, 4):
    register(Preset(
        name=f"groovae_{_bars}bar", family="music_vae", representation="groovae",
        converter_params=_frozen(split_bars=_bars, steps_per_quarter=4),
        model=_frozen(encoder_units=(512,), decoder="flat", decoder_units=(256, 256), latent_dim=256,
                      free_bits=48.0, max_beta=0.2, beta_rate=0.0,
                      dropout=0.7),  # Magenta: dropout_keep_prob=0.3 on the decoder cells' inputs
        train=_MAGENTA_TRAIN, tiny_model=_VAE_TINY, tiny_train=_TINY_TRAIN,
        description=f"{_bars}-bar GrooVAE: drum hits, velocities and microtiming offsets (Groove MIDI)"))


# ---- Magenta's MusicVAE configs by their own names (issue 14), so that `musicgen import-magenta --config NAME`
# and `musicgen train --preset NAME` mean the network and data of Magenta's CONFIG_MAP[NAME].  Each is one of the
# presets above with what Magenta's config changes (sizes from magenta/models/music_vae/configs.py).
def _magenta_config(name: str, base: str, what: str, converter: Mapping[str, Any] | None = None, **model) -> None:
    preset = PRESETS[base]
    register(dataclasses.replace(
        preset, name=name, description=f"{what}, Magenta's {name}",
        converter_params=_frozen(**{**preset.converter_params, **(converter or {})}),
        model=_frozen(**{**preset.model, **model})))


_BIG_2BAR = dict(encoder_units=(2048,), decoder_units=(2048, 2048, 2048), latent_dim=512)
_magenta_config("cat-mel_2bar_small", "cat-mel_2bar", "2-bar melody MusicVAE")
_magenta_config("cat-mel_2bar_big", "cat-mel_2bar", "2-bar melody MusicVAE (3 x 2048 decoder)", max_beta=0.5,
                **_BIG_2BAR)
_magenta_config("flat-mel_16bar", "hierdec-mel_16bar", "16-bar melody MusicVAE with a flat decoder",
                decoder="flat", decoder_units=(2048, 2048, 2048), level_lengths=None)
_magenta_config("cat-drums_2bar_small", "cat-drums_2bar", "2-bar drum MusicVAE (9-class drum map)")
_magenta_config("cat-drums_2bar_big", "cat-drums_2bar", "2-bar drum MusicVAE (9-class drum map, 3 x 2048 decoder)",
                **_BIG_2BAR)
_magenta_config("groovae_2bar_humanize", "groovae_2bar",
                "2-bar GrooVAE that encodes quantized hits and decodes velocities and timing",
                converter=dict(humanize=True))
_magenta_config("groovae_2bar_tap_fixed_velocity", "groovae_2bar",
                "2-bar GrooVAE that encodes one tapped rhythm and decodes a whole groove",
                converter=dict(tapify=True, fixed_velocities=True))
_magenta_config("groovae_2bar_add_closed_hh", "groovae_2bar",
                "2-bar GrooVAE that encodes a groove without closed hi-hat and decodes it with one",
                converter=dict(add_instruments=[2]))


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


# ---- beta-VAEs (issue 6)
# Seed 000 (pitch histograms) and seed 002 (ESAC melody windows); models in musicgen_tf/models/beta_vae.py.
# Neither seed clips gradients.  Seed 000 names no epoch count or batch size: 100 epochs of 200 steps at batch 64
# are ours (early stopping usually ends it sooner).  Seed 002's epoch is one pass over every window of the ESAC
# corpus (~64k windows at 32 per batch); ours is 2000 batches of one random window per song.
_BETA_TINY_TRAIN = _frozen(batch_size=8, total_steps=40, steps_per_epoch=10, sample_every_epochs=2, num_samples=2,
                           shuffle_buffer=100)

register(Preset(
    name="beta_vae_pitch", family="beta_vae", representation="pitch_histogram", converter_params=_frozen(),
    model=_frozen(hidden_units=(512, 256), num_residual_blocks=2, latent_dim=128, beta=0.5, consistency_weight=0.2,
                  reconstruction_reduction="sum"),
    # AdamW: the seed's optimizer; weight decay 0.01 is PyTorch's AdamW default (the seed gives no value).
    train=TrainConfig(batch_size=64, learning_rate=2e-4, lr_schedule="cosine", min_learning_rate=2e-6,
                      optimizer="adamw", weight_decay=0.01, clip_norm=None, gradient_accumulation=2,
                      total_steps=100 * 200, steps_per_epoch=200, early_stopping_patience=15, sample_every_epochs=10,
                      num_samples=3),
    tiny_model=_frozen(hidden_units=(32, 16), num_residual_blocks=1, latent_dim=8, entropy_samples=8),
    tiny_train=_BETA_TINY_TRAIN,
    description="β-VAE on 128-bin pitch histograms: residual LayerNorm/SiLU MLP, BCE + 0.5 KL + 0.2 adjacent-pitch "
                "consistency (seed 000)"))

register(Preset(
    name="beta_vae_melody", family="beta_vae", representation="melody_timeseries",
    converter_params=_frozen(time_step=0.25),
    # l2_weight_decay: PyTorch's Adam(weight_decay=1e-5) is L2 added to the gradient, so the model adds
    # 0.5 * 1e-5 * ||w||^2 to its objective and the optimizer is plain Adam (AdamW's decay is decoupled).
    model=_frozen(window=64, hidden_units=256, latent_dim=50, dropout=0.5, beta=0.5, l2_weight_decay=1e-5,
                  lead_in=True, reconstruction_reduction="mean"),
    # StepLR(step_size=10, gamma=0.1) per epoch -> staircase decay x0.1 every 10 epochs.
    train=TrainConfig(batch_size=32, learning_rate=0.005, lr_schedule="step", decay_rate=0.1, decay_epochs=10,
                      optimizer="adam", weight_decay=0.0, clip_norm=None, total_steps=10 * 2000,
                      steps_per_epoch=2000, sample_every_epochs=5, num_samples=4),
    tiny_model=_frozen(window=16, hidden_units=32, latent_dim=8),
    tiny_train=_BETA_TINY_TRAIN,
    description="β-VAE on one-hot 64-step windows of ESAC melody symbols (\"60 _ _ r\"), BCE + 0.5 KL (seed 002)"))


# ---- Resnet1D CVAE (issue 7)
# Seed 004 (GTZAN at 3000 Hz, 90001-sample clips); model in musicgen_tf/models/resnet_cvae.py.  The seed notebook
# gives the layers (encoder 64/128/128/256, decoder 512/256/128/64, kernel 1 on (1, 90001) frames) and Adam(3e-4,
# 0.9, 0.999, 1e-8), but no latent size, batch or step count: latent 2 and batch 10 follow the public notebooks
# derived from it; 20 epochs (the seed's) of 100 steps (~one pass over GTZAN's 1000 clips at batch 10) are ours.
# "genre" conditions the decoder only when the data has more than one genre (the seed trained on jazz alone).
_CVAE_TINY_TRAIN = _frozen(batch_size=2, total_steps=6, steps_per_epoch=3, sample_every_epochs=1, num_samples=2,
                           shuffle_buffer=16)
_SEED_ADAM = TrainConfig(batch_size=10, learning_rate=3e-4, lr_schedule="constant", optimizer="adam", clip_norm=None,
                         total_steps=20 * 100, steps_per_epoch=100, sample_every_epochs=5, num_samples=4,
                         shuffle_buffer=1000)

register(Preset(
    name="resnet_cvae_gtzan", family="resnet_cvae", representation="waveform",
    converter_params=_frozen(sample_rate=3000, frame_length=90001),
    model=_frozen(layout="frame", latent_dim=2, encoder_filters=(64, 128, 128, 256),
                  decoder_filters=(512, 256, 128, 64), adam_epsilon=1e-8),
    train=_SEED_ADAM,
    tiny_model=_frozen(encoder_filters=(8, 8), decoder_filters=(16, 8), label_embedding_dim=4),
    tiny_train=_CVAE_TINY_TRAIN, label="genre",
    description="Resnet1D convolutional VAE on 30 s GTZAN clips at 3000 Hz, clip-as-channels like the notebook, "
                "sigmoid cross-entropy ELBO; genre-conditioned with more than one genre (seed 004)"))

# Ours, not the seed's: 16 kHz, 32768-sample (2.05 s) frames, strided temporal convolutions (kernel 9, 4x per stage,
# bottleneck of 128 steps) and a multi-resolution STFT loss (FFT 512/1024/2048) beside the waveform cross-entropy;
# its weight makes the spectral term about as large as the summed waveform term at initialisation.
register(Preset(
    name="resnet_cvae_spectral", family="resnet_cvae", representation="waveform",
    converter_params=_frozen(sample_rate=16000, frame_length=32768),
    model=_frozen(layout="temporal", latent_dim=64, encoder_filters=(16, 32, 64, 128),
                  decoder_filters=(128, 64, 32, 16), kernel_size=9, strides=(4, 4, 4, 4), spectral_weight=1000.0,
                  fft_sizes=(512, 1024, 2048), adam_epsilon=1e-8),
    train=dataclasses.replace(_SEED_ADAM, batch_size=8, clip_norm=1.0),
    tiny_model=_frozen(encoder_filters=(4, 8), decoder_filters=(8, 4), strides=(4, 4), latent_dim=8,
                       label_embedding_dim=4, fft_sizes=(128, 256)),
    tiny_train=_CVAE_TINY_TRAIN, label="genre",
    description="Resnet1D VAE on 2 s clips at 16 kHz with strided temporal convolutions and a multi-resolution "
                "STFT loss next to the waveform loss"))


# ---- Transformer-XL (issue 5, issue 17 part 3)
# Seed 003 / YatingMusic/remi: REMI + Transformer-XL, 12 layers, d_model 512, 8 heads, d_inner 2048, dropout 0.1,
# segment (x_len) 512, memory 512.  Training regime of seed 003's config: Adam 1e-4 after 1,000 linear warm-up
# steps, batch 16, windows of 512 tokens every 256 tokens, fp16 (here: mixed precision where a GPU is visible),
# gradient clip 1.0, pitch-shift (+-6) and time-stretch augmentation (the seed names no stretch range: +-20% is
# ours).  Default REMI converter parameters (16 positions per 4/4 bar, chords from markers or the recogniser).
register(Preset(
    name="remi_txl_pop", family="transformer_xl", representation="remi", converter_params=_frozen(),
    model=_frozen(num_layers=12, d_model=512, num_heads=8, d_inner=2048, dropout=0.1, dropatt=0.0,
                  segment_len=512, mem_len=512, sample_bars=4, sample_max_tokens=512),
    train=TrainConfig(batch_size=16, learning_rate=1e-4, lr_schedule="constant", warmup_steps=1000, clip_norm=1.0,
                      total_steps=100_000, steps_per_epoch=500, sample_every_epochs=5, num_samples=2,
                      shuffle_buffer=2000, mixed_precision="auto", window_tokens=512, window_stride=256),
    augmentation=_frozen(pitch_shift=6, tempo_stretch=1.2),
    tiny_model=_frozen(num_layers=2, d_model=32, num_heads=2, d_inner=64, segment_len=32, mem_len=32,
                       sample_bars=2, sample_max_tokens=64),
    tiny_train=_frozen(batch_size=2, learning_rate=1e-3, warmup_steps=0, total_steps=20, steps_per_epoch=5,
                       sample_every_epochs=1, num_samples=2, shuffle_buffer=100, window_tokens=64,
                       window_stride=32),
    description="Pop Music Transformer: REMI tokens + Transformer-XL with segment memory (seed 003)"))

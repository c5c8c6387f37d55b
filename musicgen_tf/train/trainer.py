"""`musicgen train`: preset + TFRecords -> a trained model in a run directory, with exact resume.

An "epoch" here is `steps_per_epoch` optimizer steps over an endless, seeded stream of batches.  Keras'
BackupAndRestore saves model, optimizer and epoch at every epoch end (`RandomStateBackup` adds the random
generators); a rerun of the same command restores them and skips the batches already seen, so an interrupted run
ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from musicgen_tf.configs import Preset, get_preset
from musicgen_tf.errors import MusicgenError
from musicgen_tf.models.builders import build_model, dummy_batch
from musicgen_tf.models.fused_lstm import concurrent_chains
from musicgen_tf.music.representations import converter_from_config
from musicgen_tf.tfrecords.augment import make_augmenter
from musicgen_tf.tfrecords.dataset import make_dataset, shard_paths
from musicgen_tf.tfrecords.integrity import naming_damaged_shards
from musicgen_tf.tfrecords.manifest import check_representation, read_manifest
from musicgen_tf.train import distributed, runtime
from musicgen_tf.train.callbacks import RandomStateBackup, SampleLogger
from musicgen_tf.train.run_dir import RunDir
from musicgen_tf.train.schedules import make_optimizer


@dataclasses.dataclass
class TrainOptions:
    preset: str
    data: str
    run_dir: str
    tiny: bool = False
    epochs: int | None = None  # overrides the preset's total steps: epochs * steps_per_epoch
    steps: int | None = None
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    mixed_precision: bool | str | None = None  # None: the preset's (off | on | auto = where a GPU is visible)
    xla: bool = False
    strategy: str = "default"
    seed: int | None = None
    verbose: int = 2
    callbacks: list = dataclasses.field(default_factory=list)  # extra Keras callbacks, run after ours


def resolve_preset(options: TrainOptions) -> Preset:
    preset = get_preset(options.preset).resolved(
        options.tiny, batch_size=options.batch_size, steps_per_epoch=options.steps_per_epoch,
        total_steps=options.steps, seed=options.seed)
    if options.epochs is not None:
        preset = dataclasses.replace(preset, train=dataclasses.replace(
            preset.train, total_steps=options.epochs * preset.train.steps_per_epoch))
    return preset


def _check_same_run(run: RunDir, config: dict) -> None:
    """A rerun must be the same training job, or resuming would mix two models."""
    if not run.exists():
        return
    stored = run.read_config()
    for key in ("preset", "data_representation"):
        if stored.get(key) != json.loads(json.dumps(config[key])):  # compare as stored (tuples become lists)
            raise ValueError(f"{run.path} holds a run with a different {key.replace('_', ' ')}; "
                             "use a new --run-dir (or delete this one) to start another run")


def token_transforms(preset: Preset, augmenter=None):
    """(train transform, validation transform) for `make_dataset`, or (None, None): token windows on both splits
    (the preset's `window_tokens`/`window_stride`) and a per-example augmenter on the training split only."""
    config = preset.train
    augmenter = augmenter if augmenter is not None and augmenter.per_example else None
    if not (config.window_tokens or augmenter):
        return None, None
    from musicgen_tf.tfrecords.remi_augment import window_dataset

    def windows(ds):
        if not config.window_tokens:
            return ds
        return window_dataset(ds, config.window_tokens, config.window_stride or config.window_tokens)

    def train_transform(ds):
        ds = windows(ds)
        if config.window_tokens:  # windows of one piece would otherwise sit side by side in a batch
            ds = ds.shuffle(config.shuffle_buffer, seed=config.seed)
        return augmenter.apply(ds) if augmenter else ds

    return train_transform, (windows if config.window_tokens else None)


def train(options: TrainOptions) -> keras.callbacks.History:
    preset = resolve_preset(options)
    # before anything starts TensorFlow's thread pools
    intra_op_threads = runtime.share_cpu_threads(concurrent_chains()) if preset.family == "music_vae" else None
    strategy = runtime.make_strategy(options.strategy)  # before any other TensorFlow op (multi-worker needs it)
    mixed_precision = runtime.resolve_mixed_precision(
        preset.train.mixed_precision if options.mixed_precision is None else options.mixed_precision)
    role = distributed.worker_role(strategy)
    accumulation = preset.train.gradient_accumulation
    if accumulation > 1 and strategy.num_replicas_in_sync > 1:
        # Keras 3 applies accumulated gradients inside a `cond`, where a strategy cannot all-reduce (merge_call).
        raise MusicgenError(f"preset {preset.name} accumulates gradients over {accumulation} steps, which Keras "
                            f"cannot do across {strategy.num_replicas_in_sync} replicas; train it with --strategy "
                            "default (or a preset without gradient accumulation)")
    data_dir = os.path.expanduser(options.data)
    manifest = read_manifest(data_dir)
    check_representation(manifest, data_dir, preset.representation, dict(preset.converter_params))
    shared_run = RunDir(options.run_dir)
    config = {"preset": preset.to_json(), "data": os.path.abspath(data_dir),
              "data_representation": manifest["representation"],
              "data_schema": {key: manifest[key] for key in ("features", "labels")},
              "flags": {"mixed_precision": mixed_precision, "xla": options.xla,
                        "strategy": options.strategy, "workers": role.num_workers},
              "intra_op_threads": intra_op_threads}  # None: TensorFlow's default or the user's own
    if role.is_chief:
        _check_same_run(shared_run, config)
    # Only the chief writes the run directory; other workers write a temporary copy that is removed at the end.
    with distributed.worker_run_path(shared_run.path, role) as path:
        run = RunDir(path)
        run.write_config(config)
        return _fit(options, preset, manifest, data_dir, run, strategy, mixed_precision)


def _fit(options: TrainOptions, preset: Preset, manifest: dict, data_dir: str, run: RunDir,
         strategy: tf.distribute.Strategy, mixed_precision: bool) -> keras.callbacks.History:
    converter = converter_from_config(manifest["representation"])
    train_config = preset.train
    runtime.set_precision(mixed_precision)
    runtime.enable_determinism(train_config.seed, deterministic_ops=not options.xla)
    epochs = math.ceil(train_config.total_steps / train_config.steps_per_epoch)
    labels = (preset.label,) if preset.label else ()
    done_epochs = min(run.resume_epoch(), epochs)
    augmenter = make_augmenter(preset.augmentation, preset.representation, converter, seed=train_config.seed)
    train_transform, validation_transform = token_transforms(preset, augmenter)
    # Global batches; under a distribution strategy Keras splits each over the replicas, every worker keeping its
    # part of the same seeded stream (`shard_by_data`).
    train_data = make_dataset(data_dir, "train", train_config.batch_size, representation=preset.representation,
                              shuffle=True, shuffle_buffer=train_config.shuffle_buffer, repeat=True,
                              drop_remainder=True, labels=labels, seed=train_config.seed, with_source_key=False,
                              transform=train_transform)
    if augmenter is not None and not augmenter.per_example:  # seeded per batch: the skip below keeps resume exact
        train_data = augmenter.apply(train_data)
    train_data = train_data.skip(done_epochs * train_config.steps_per_epoch)  # batches seen before the restart
    train_data = distributed.shard_by_data(train_data)
    validation, validation_steps = None, None
    if manifest["splits"]["validation"]["examples"] > 0:
        validation_steps = math.ceil(manifest["splits"]["validation"]["examples"] / train_config.batch_size)
        if validation_transform is not None:
            validation_steps = None  # windows: as many batches as the split gives
        validation = distributed.shard_by_data(make_dataset(
            data_dir, "validation", train_config.batch_size, shuffle=False, labels=labels, with_source_key=False,
            transform=validation_transform))

    with strategy.scope():
        model = build_model(preset, manifest)
        model(dummy_batch(manifest), training=False)  # every variable exists before fit (and before a restore)
        model.compile(optimizer=make_optimizer(train_config), jit_compile=options.xla)
        model.optimizer.build(model.trainable_variables)
    # Keras 3 reduces a dict-shaped distributed batch to a tensor before fit under a strategy and fails
    # (keras-team/keras#20329); without a recorded strategy it uses the one in scope, so fit runs in the scope.
    model._distribute_strategy = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        distributed.one_collective_for_step_logs(model)
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    callbacks = [
        RandomStateBackup(run.backup_dir, resume_epoch=done_epochs),  # before Keras' backup: see its docstring
        keras.callbacks.BackupAndRestore(str(run.backup_dir), save_freq="epoch", delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(str(run.checkpoints_dir / "epoch-{epoch:04d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(str(run.logs_dir), update_freq=max(train_config.steps_per_epoch // 10, 1)),
        SampleLogger(converter, run, every_epochs=train_config.sample_every_epochs,
                     num=train_config.num_samples, seed=train_config.seed),
    ]
    callbacks += options.callbacks
    if train_config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss" if validation is not None else "loss", patience=train_config.early_stopping_patience,
            restore_best_weights=True))
    shards = shard_paths(data_dir, "train", manifest) + shard_paths(data_dir, "validation", manifest)
    with naming_damaged_shards(shards), strategy.scope():  # a truncated shard is reported by file and record
        history = model.fit(train_data, epochs=epochs, steps_per_epoch=train_config.steps_per_epoch,
                            validation_data=validation, validation_steps=validation_steps, callbacks=callbacks,
                            shuffle=False, verbose=options.verbose)  # the dataset shuffles itself, seeded
    model.save_weights(str(run.final_weights))
    return history


@dataclasses.dataclass
class TrainedRun:
    model: keras.Model
    preset: Preset
    converter: object
    schema: dict  # the training data's representation, features and labels

    def label_ids(self, label: str | None, num: int):
        """A label name (e.g. a style) -> int64 ids [num] for a conditioned model; None passes through."""
        if label is None:
            return None
        if not self.preset.label:
            raise ValueError(f"this model ({self.preset.name}) is not conditioned on a label; drop --label")
        vocabulary = self.schema["labels"][self.preset.label]["vocabulary"]
        if label not in vocabulary:
            raise ValueError(f"unknown {self.preset.label} {label!r}; the model knows {vocabulary}")
        return np.full([num], vocabulary.index(label), dtype=np.int64)


def load_trained_model(run_dir: str, checkpoint: str | None = None) -> TrainedRun:
    """Model with weights, preset, converter and data schema from a run directory, for generation and export."""
    run = RunDir(run_dir)
    config = run.read_config()
    preset = get_preset(config["preset"]["name"])
    preset = dataclasses.replace(preset, model=config["preset"]["model"], label=config["preset"]["label"])
    schema = {"representation": config["data_representation"], **config["data_schema"]}
    converter = converter_from_config(config["data_representation"])
    model = build_model(preset, schema)
    model(dummy_batch(schema), training=False)  # create the variables before loading them
    model.load_weights(str(run.weights_path(checkpoint)))
    return TrainedRun(model, preset, converter, schema)

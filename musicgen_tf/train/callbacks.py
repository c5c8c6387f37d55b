"""Training callbacks that Keras does not have: listen to and look at samples while a model trains."""

from __future__ import annotations

import os

import keras
import numpy as np
import soundfile
import tensorflow as tf

from musicgen_tf.models.builders import outputs_to_examples
from musicgen_tf.music.converter import Waveform
from musicgen_tf.train.run_dir import RunDir

AUDIO_RATE = 16000


class RandomStateBackup(keras.callbacks.Callback):
    """Save and restore the model's random-generator states (dropout, posterior noise) beside Keras' backup.

    Keras' `BackupAndRestore` restores weights and optimizer but not `SeedGenerator` states, so a resumed run would
    draw other noise than an uninterrupted one.  The states after epoch N go to `random_states-NNNN.npz` (the last
    two kept), written atomically and *before* Keras' backup of the same epoch (place this callback right before
    `BackupAndRestore`); a resume loads the file of the epoch Keras restores (`resume_epoch`), so a kill between
    the two writes still resumes with matching states.
    """

    def __init__(self, backup_dir, resume_epoch: int = 0):
        super().__init__()
        self.backup_dir, self.resume_epoch = os.fspath(backup_dir), int(resume_epoch)

    def _path(self, epoch: int) -> str:
        return os.path.join(self.backup_dir, f"random_states-{epoch:04d}.npz")

    def _states(self):
        return {v.path: v for v in self.model.non_trainable_variables if v.path.endswith("seed_generator_state")}

    def on_train_begin(self, logs=None):
        path = self._path(self.resume_epoch)
        if self.resume_epoch == 0 or not os.path.isfile(path):
            return
        with np.load(path, allow_pickle=False) as saved:
            for name, variable in self._states().items():
                if name in saved:
                    variable.assign(saved[name])

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.backup_dir, exist_ok=True)
        path = self._path(epoch + 1)
        with open(path + ".tmp", "wb") as file:
            np.savez(file, **{name: np.asarray(v.numpy()) for name, v in self._states().items()})
        os.replace(path + ".tmp", path)
        stale = self._path(epoch - 1)
        if os.path.isfile(stale):
            os.remove(stale)


class SampleLogger(keras.callbacks.Callback):
    """Every `every_epochs` epochs: sample `num` pieces with a fixed seed, write them as MIDI under
    `<run>/samples/epoch-NNNN/`, and log piano rolls (images) and renderings (audio) to TensorBoard.

    Audio models (the converter returns `Waveform`s) get `sample-N.wav` files and TensorBoard audio + spectrograms.
    """

    def __init__(self, converter, run: RunDir, every_epochs: int = 5, num: int = 4, seed: int = 0,
                 temperature: float = 1.0):
        super().__init__()
        self.converter, self.run = converter, run
        self.every_epochs, self.num, self.seed, self.temperature = every_epochs, num, seed, temperature
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self.every_epochs <= 0 or (epoch + 1) % self.every_epochs:
            return
        from musicgen_tf.music import render  # matplotlib etc. only when samples are due

        outputs = self.model.sample(self.num, temperature=self.temperature, seed=[self.seed, epoch])
        pieces = [self.converter.render_output(example) for example in outputs_to_examples(outputs)]
        folder = self.run.samples_dir / f"epoch-{epoch + 1:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(str(self.run.logs_dir / "samples"))
        if pieces and all(isinstance(piece, Waveform) for piece in pieces):
            self._log_waveforms(pieces, folder, epoch)
            return
        images, audio = [], []
        for index, piece in enumerate(pieces):
            render.write_midi(piece, folder / f"sample-{index}.mid")
            images.append(render.piano_roll_image(piece))
            audio.append(render.synthesize(piece, AUDIO_RATE).samples)
        length = max(len(a) for a in audio)
        audio = np.stack([np.pad(a, (0, length - len(a))) for a in audio])[:, :, None]
        with self._writer.as_default(step=epoch + 1):
            tf.summary.image("samples/piano_roll", np.stack(_same_size(images)), max_outputs=self.num)
            tf.summary.audio("samples/audio", audio, AUDIO_RATE, max_outputs=self.num)
        self._writer.flush()

    def _log_waveforms(self, pieces, folder, epoch):
        """Audio models: `sample-N.wav` at the clip's own rate, plus TensorBoard audio and spectrogram images."""
        from musicgen_tf.music import render

        rate = pieces[0].sample_rate
        images, audio = [], []
        for index, piece in enumerate(pieces):
            samples = np.nan_to_num(np.asarray(piece.samples, np.float32).reshape(-1))
            soundfile.write(str(folder / f"sample-{index}.wav"), np.clip(samples, -1.0, 1.0), piece.sample_rate,
                            subtype="PCM_16")
            images.append(render.spectrogram_image(samples, piece.sample_rate))
            audio.append(samples)
        length = max(len(a) for a in audio)
        audio = np.stack([np.pad(a, (0, length - len(a))) for a in audio])[:, :, None]
        with self._writer.as_default(step=epoch + 1):
            tf.summary.image("samples/spectrogram", np.stack(_same_size(images)), max_outputs=self.num)
            tf.summary.audio("samples/audio", np.clip(audio, -1.0, 1.0), rate, max_outputs=self.num)
        self._writer.flush()


def _same_size(images: list[np.ndarray]) -> list[np.ndarray]:
    """Pad images to one height/width so TensorBoard can show them as one batch."""
    height = max(i.shape[0] for i in images)
    width = max(i.shape[1] for i in images)
    return [np.pad(i, ((0, height - i.shape[0]), (0, width - i.shape[1]), (0, 0)), constant_values=255)
            for i in images]

"""Convolutional VAE on raw audio frames with Resnet1D blocks (seed 004: GTZAN at 3000 Hz, 90001-sample clips).

Input: `{"audio": float32 [B, N]}` in [-1, 1] (`WaveformConverter` examples), optionally `{"<label>_id": int64 [B]}`
(genre) when the model is conditioned (`num_labels` > 0: a label embedding is concatenated to the encoder features
and to z, i.e. a *conditional* VAE; the seed's "CVAE" means convolutional VAE and had no labels).

Two layouts of the same network:
- `layout="frame"` (the seed's): the notebook reshapes a clip to (1, 90001), so the whole clip is the *channel* axis
  of a length-1 sequence and every Conv1D / Conv1DTranspose has kernel 1: the encoder is Conv1D(64, 1, 2) ->
  Resnet1DBlock(64) -> Conv1D(128) -> block -> Conv1D(128) -> block -> Conv1D(256) -> block -> Flatten ->
  Dense(2 * latent); the decoder reshapes z to (1, latent) -> [Resnet1DBlock(f, "decode") -> Conv1DTranspose(f, 1)]
  for f in 512, 256, 128, 64 -> Conv1DTranspose(90001, 1).  Two deviations, both because the seed's versions are
  degenerate: its blocks were called as `Resnet1DBlock(64, 1)` against a `(kernel_size, filters)` signature (so one
  filter, broadcast-added to the input); ours have `filters` filters.  And instance normalisation over a length-1
  axis outputs a constant (x - mean(x) = 0), so frame-layout encoder blocks normalise over channels (LayerNorm).
- `layout="temporal"`: [B, N, 1] waveforms, strided Conv1D(k) downsampling stages with Resnet1DBlocks (instance
  norm), Dense to the posterior; decoder Dense -> [L0, F0] -> [Resnet1DBlock -> Conv1DTranspose(k, stride)] stages ->
  Conv1D(1, k).  The clip is zero-padded to a multiple of prod(strides) and the output cropped back to exactly N.

Loss (the seed's, single-sample Monte-Carlo ELBO): targets t = (x + 1) / 2 in [0, 1], decoder logits l [B, N],
log p(x|z) = -sum_n sigmoid_xent(t, l), loss = -mean(log p(x|z) + log N(z; 0, I) - log N(z; mean, exp(logvar))).
Reported: `loss`, `reconstruction_loss` = mean(-log p(x|z)), `kl` = mean(log q(z|x) - log p(z)), and with
`spectral_weight > 0` also `spectral_loss`: the multi-resolution STFT loss (spectral convergence + log-magnitude L1,
averaged over `fft_sizes`) between x and the decoded audio 2 * sigmoid(l) - 1, added as `spectral_weight * it`.

Audio out (`sample`, `decode`, `reconstruct`): 2 * sigmoid(logits) - 1, float32 [B, N].  Everything is `tf`/`tf.signal`
ops, graph- and XLA-friendly.  Noise: reparameterisation draws come from a model-owned `SeedGenerator` saved with the
weights (`NoiseSource`); `sample` uses stateless draws from an int [2] seed.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from musicgen_tf.models.common import LossDictModel, NoiseSource, stateless_seed

LAYOUTS = ("frame", "temporal")
_LOG_2PI = math.log(2.0 * math.pi)
_EPS = 1e-7


# -- loss terms -------------------------------------------------------------------------------------------------------

def log_normal_pdf(sample, mean, logvar):
    """log N(sample; mean, diag(exp(logvar))) summed over the last axis: float32 [B, D] -> [B]."""
    return tf.reduce_sum(-0.5 * ((sample - mean) ** 2.0 * tf.exp(-logvar) + logvar + _LOG_2PI), axis=-1)


def waveform_log_likelihood(audio, logits):
    """log p(x|z) of audio float32 [B, N] in [-1, 1] under Bernoulli-logit decoder outputs [B, N] -> [B]."""
    targets = (tf.cast(audio, tf.float32) + 1.0) / 2.0
    return -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits), axis=-1)


def logits_to_audio(logits):
    """Decoder logits [B, N] -> audio float32 [B, N] in [-1, 1]."""
    return 2.0 * tf.sigmoid(tf.cast(logits, tf.float32)) - 1.0


def multi_resolution_stft_loss(target, predicted, fft_sizes=(512, 1024, 2048)):
    """Mean over FFT sizes of spectral convergence + log-magnitude L1, per example: float32 [B, N] x2 -> [B].

    Spectral convergence: ||S_p - S_t||_F / ||S_t||_F; log-magnitude: mean |log S_t - log S_p| with S = |STFT| (Hann
    window, hop n/4).  Zero for identical signals.  FFT sizes longer than the clip are shrunk to it.
    """
    target, predicted = tf.cast(target, tf.float32), tf.cast(predicted, tf.float32)
    length = target.shape[-1]
    terms = []
    for n_fft in fft_sizes:
        n_fft = int(min(n_fft, 2 ** int(math.log2(length)))) if length else int(n_fft)
        spectra = [tf.abs(tf.signal.stft(x, frame_length=n_fft, frame_step=max(n_fft // 4, 1), fft_length=n_fft,
                                         pad_end=True)) for x in (target, predicted)]
        s_t, s_p = spectra
        convergence = (tf.sqrt(tf.reduce_sum((s_p - s_t) ** 2, axis=[1, 2]))
                       / tf.maximum(tf.sqrt(tf.reduce_sum(s_t ** 2, axis=[1, 2])), _EPS))
        log_l1 = tf.reduce_mean(tf.abs(tf.math.log(s_t + 1e-5) - tf.math.log(s_p + 1e-5)), axis=[1, 2])
        terms.append(convergence + log_l1)
    return tf.add_n(terms) / len(terms)


# -- layers -----------------------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="musicgen_tf")
class Resnet1DBlock(keras.layers.Layer):
    """x float [B, L, C] -> float [B, L, filters] (seed 004's block).

    relu(x) -> conv1a -> norm1a -> LeakyReLU(0.4) -> conv1b -> norm1b -> LeakyReLU(0.4) -> + shortcut(x) -> relu.
    kind "encode": Conv1D + instance norm (`norm="instance"`) or LayerNorm over channels (`norm="layer"`);
    kind "decode": Conv1DTranspose (stride 1) + BatchNorm.  shortcut = identity, or a 1x1 Conv1D when C != filters.
    The seed's encode block strides conv1a by 2, which only works on its length-1 sequences (no-op there); ours keep
    the length and leave downsampling to the stage convolutions.
    """

    def __init__(self, filters, kernel_size=1, kind="encode", norm="instance", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("encode", "decode"):
            raise ValueError(f"Resnet1DBlock kind must be 'encode' or 'decode', got {kind!r}")
        self.filters, self.kernel_size, self.kind, self.norm = int(filters), int(kernel_size), kind, norm
        conv = keras.layers.Conv1D if kind == "encode" else keras.layers.Conv1DTranspose
        self.conv1a = conv(self.filters, self.kernel_size, 1, padding="same", name="conv1a")
        self.conv1b = conv(self.filters, self.kernel_size, 1, padding="same", name="conv1b")
        self.norm1a, self.norm1b = (self._norm(f"norm1{s}") for s in "ab")
        self.act = keras.layers.LeakyReLU(negative_slope=0.4, name="leaky_relu")
        self.shortcut = None

    def _norm(self, name):
        if self.kind == "decode":
            return keras.layers.BatchNormalization(name=name)
        if self.norm == "instance":
            return keras.layers.GroupNormalization(groups=-1, epsilon=1e-3, name=name)  # groups=-1: per channel
        if self.norm == "layer":
            return keras.layers.LayerNormalization(epsilon=1e-3, name=name)
        raise ValueError(f"Resnet1DBlock norm must be 'instance' or 'layer', got {self.norm!r}")

    def build(self, input_shape):
        if input_shape[-1] != self.filters:
            self.shortcut = keras.layers.Conv1D(self.filters, 1, name="shortcut")
            self.shortcut.build(input_shape)
        self.conv1a.build(input_shape)
        inner = (*input_shape[:-1], self.filters)
        for layer in (self.norm1a, self.conv1b, self.norm1b):
            layer.build(inner)
        self.built = True

    def call(self, x, training=False):
        h = self.act(self.norm1a(self.conv1a(tf.nn.relu(x)), training=training))
        h = self.act(self.norm1b(self.conv1b(h), training=training))
        return tf.nn.relu(h + (self.shortcut(x) if self.shortcut is not None else x))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size, "kind": self.kind,
                "norm": self.norm}


# -- model ------------------------------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="musicgen_tf")
class ResnetCVAE(LossDictModel):
    """VAE over audio frames `{"audio": float32 [B, frame_length]}` (see the module docstring for the layouts).

    `call(inputs, training)` -> `{"logits", "audio": float32 [B, N], "z_mean", "z_log_var": float32 [B, latent]}`
    (z sampled when training, the mean otherwise).
    """

    def __init__(self, frame_length=90001, latent_dim=2, layout="frame", encoder_filters=(64, 128, 128, 256),
                 decoder_filters=(512, 256, 128, 64), kernel_size=1, strides=(2, 2, 2, 2), num_labels=0,
                 label_key="genre", label_embedding_dim=16, spectral_weight=0.0, fft_sizes=(512, 1024, 2048),
                 adam_epsilon=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.frame_length, self.latent_dim, self.layout = int(frame_length), int(latent_dim), layout
        self.encoder_filters = tuple(int(f) for f in encoder_filters)
        self.decoder_filters = tuple(int(f) for f in decoder_filters)
        self.kernel_size = int(kernel_size) if layout == "temporal" else 1
        self.strides = tuple(int(s) for s in strides)
        if layout == "temporal" and len(self.strides) != len(self.encoder_filters):
            raise ValueError("temporal layout: strides needs one entry per encoder stage")
        if layout == "temporal" and len(self.decoder_filters) != len(self.strides):
            raise ValueError("temporal layout: decoder_filters needs one entry per stride (one upsampling each)")
        self.num_labels, self.label_key = int(num_labels), label_key
        self.label_embedding_dim = int(label_embedding_dim)
        self.spectral_weight, self.fft_sizes = float(spectral_weight), tuple(int(n) for n in fft_sizes)
        self.adam_epsilon = None if adam_epsilon is None else float(adam_epsilon)
        self.seed = seed
        self.hop = math.prod(self.strides) if layout == "temporal" else 1
        self.padded_length = -(-self.frame_length // self.hop) * self.hop
        self.bottleneck_length = self.padded_length // self.hop if layout == "temporal" else 1

        k, frame = self.kernel_size, layout == "frame"
        enc_norm = "layer" if frame else "instance"
        self.encoder_layers = []
        for i, filters in enumerate(self.encoder_filters):
            stride = 2 if frame else self.strides[i]
            self.encoder_layers += [keras.layers.Conv1D(filters, k, stride, padding="same", name=f"encoder_conv_{i}"),
                                    Resnet1DBlock(filters, k, "encode", enc_norm, name=f"encoder_block_{i}")]
        self.flatten = keras.layers.Flatten(name="flatten")
        self.posterior = keras.layers.Dense(2 * self.latent_dim, dtype="float32", name="posterior")
        self.label_embedding = (keras.layers.Embedding(self.num_labels, self.label_embedding_dim, name="label_embedding")
                                if self.num_labels else None)
        self.decoder_input = (None if frame else
                              keras.layers.Dense(self.bottleneck_length * self.decoder_filters[0], name="decoder_input"))
        self.decoder_layers = []
        for i, filters in enumerate(self.decoder_filters):
            stride = 1 if frame else self.strides[::-1][i]
            self.decoder_layers += [Resnet1DBlock(filters, k, "decode", name=f"decoder_block_{i}"),
                                    keras.layers.Conv1DTranspose(filters, k, stride, padding="same",
                                                                 name=f"decoder_upconv_{i}")]
        self.output_layer = (keras.layers.Conv1DTranspose(self.frame_length, 1, 1, dtype="float32", name="logits")
                             if frame else keras.layers.Conv1D(1, k, padding="same", dtype="float32", name="logits"))
        self.noise = NoiseSource(seed, name="noise")
        self.create_trackers()
        self._create_variables()

    def compile(self, optimizer="adam", *args, **kwargs):
        """Keras' compile; with `adam_epsilon` set, an Adam-family optimizer uses that epsilon (the seed's Adam has
        1e-8, Keras defaults to 1e-7, and the shared `TrainConfig` has no epsilon field)."""
        optimizer = keras.optimizers.get(optimizer)
        if self.adam_epsilon is not None and isinstance(optimizer, keras.optimizers.Adam):
            optimizer.epsilon = self.adam_epsilon
        return super().compile(optimizer, *args, **kwargs)

    @property
    def metric_names(self):
        return ("loss", "reconstruction_loss", "kl") + (("spectral_loss",) if self.spectral_weight > 0 else ())

    def _create_variables(self):
        """Run one zero batch through encoder and decoder so every weight exists before fit/load_weights."""
        batch = {"audio": tf.zeros([1, self.frame_length])}
        if self.num_labels:
            batch[f"{self.label_key}_id"] = tf.zeros([1], tf.int64)
        self(batch, training=False)

    # -- inputs ------------------------------------------------------------------------------------------------------

    def _labels(self, inputs, batch_size=None):
        """int32 [B] label ids from a batch dict (None for an unconditioned model)."""
        if not self.num_labels:
            return None
        key = f"{self.label_key}_id"
        if isinstance(inputs, dict) and key in inputs:
            return tf.cast(tf.reshape(inputs[key], [-1]), tf.int32)
        raise ValueError(f"this model is conditioned on {self.label_key!r}: pass {key!r} ids with the audio")

    def _audio(self, inputs):
        audio = inputs["audio"] if isinstance(inputs, dict) else inputs
        audio = tf.cast(tf.convert_to_tensor(audio), tf.float32)
        return audio[None] if audio.shape.rank == 1 else audio

    def _embed(self, labels):
        return tf.cast(self.label_embedding(labels), self.compute_dtype)

    # -- network -----------------------------------------------------------------------------------------------------

    def encode_audio(self, audio, labels=None, training=False):
        """audio float32 [B, N] (+ label ids int [B]) -> (mean, logvar) float32 [B, latent_dim]."""
        x = tf.cast(audio, self.compute_dtype)
        if self.layout == "frame":
            h = x[:, None, :]  # [B, 1, N]: the clip is the channel axis, as in the seed
        else:
            h = tf.pad(x, [[0, 0], [0, self.padded_length - self.frame_length]])[:, :, None]  # [B, N_pad, 1]
        for layer in self.encoder_layers:
            h = layer(h, training=training)
        h = self.flatten(h)
        if self.num_labels:
            h = tf.concat([h, self._embed(labels)], axis=-1)
        mean, logvar = tf.split(tf.cast(self.posterior(h), tf.float32), 2, axis=-1)
        return mean, logvar

    def decode_logits(self, z, labels=None, training=False):
        """z float [B, latent_dim] (+ label ids [B]) -> logits float32 [B, N] (exactly frame_length)."""
        h = tf.cast(z, self.compute_dtype)
        if self.num_labels:
            h = tf.concat([h, self._embed(labels)], axis=-1)
        if self.layout == "frame":
            h = h[:, None, :]  # [B, 1, latent]
        else:
            h = tf.reshape(self.decoder_input(h), [-1, self.bottleneck_length, self.decoder_filters[0]])
        for layer in self.decoder_layers:
            h = layer(h, training=training)
        logits = self.output_layer(h)  # frame: [B, 1, N]; temporal: [B, N_pad, 1]
        logits = logits[:, 0, :] if self.layout == "frame" else logits[:, :self.frame_length, 0]
        return tf.cast(logits, tf.float32)

    def reparameterize(self, mean, logvar):
        """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) from the model's saved noise stream."""
        return mean + tf.exp(0.5 * logvar) * self.noise.normal(tf.shape(mean))

    def call(self, inputs, training=False):
        audio, labels = self._audio(inputs), self._labels(inputs)
        mean, logvar = self.encode_audio(audio, labels, training=training)
        z = self.reparameterize(mean, logvar) if training else mean
        logits = self.decode_logits(z, labels, training=training)
        return {"logits": logits, "audio": logits_to_audio(logits), "z_mean": mean, "z_log_var": logvar, "z": z}

    # -- losses ------------------------------------------------------------------------------------------------------

    def compute_losses(self, inputs, training=False):
        """Batch dict -> float32 scalars `loss`, `reconstruction_loss`, `kl` (+ `spectral_loss`).

        Evaluation also samples z (the ELBO the seed printed for its test set is a sampled estimate).
        """
        audio, labels = self._audio(inputs), self._labels(inputs)
        mean, logvar = self.encode_audio(audio, labels, training=training)
        z = self.reparameterize(mean, logvar)
        logits = self.decode_logits(z, labels, training=training)
        log_px_z = waveform_log_likelihood(audio, logits)
        kl = tf.reduce_mean(log_normal_pdf(z, mean, logvar) - log_normal_pdf(z, 0.0, 0.0))
        reconstruction = -tf.reduce_mean(log_px_z)
        losses = {"loss": reconstruction + kl, "reconstruction_loss": reconstruction, "kl": kl}
        if self.spectral_weight > 0:
            spectral = tf.reduce_mean(multi_resolution_stft_loss(audio, logits_to_audio(logits), self.fft_sizes))
            losses["spectral_loss"] = spectral
            losses["loss"] = losses["loss"] + self.spectral_weight * spectral
        return losses

    # -- generation --------------------------------------------------------------------------------------------------

    def encode(self, inputs):
        """Batch dict / audio float32 [B, N] or [N] -> (mean, logvar) float32 [B, latent_dim] (deterministic)."""
        return self.encode_audio(self._audio(inputs), self._labels(inputs), training=False)

    def decode(self, z, labels=None, temperature=None, seed=None):
        """z float [B, latent_dim] (+ label ids int [B]) -> `{"audio": float32 [B, N]}`; deterministic
        (`temperature`/`seed` exist for the shared generation interface and are ignored)."""
        if self.num_labels:
            if labels is None:
                raise ValueError(f"this model is conditioned on {self.label_key!r}: pass labels to decode")
            labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        return {"audio": logits_to_audio(self.decode_logits(z, labels, training=False))}

    def sample(self, num, temperature=1.0, seed=None, labels=None):
        """`num` clips from the prior: z = temperature * N(0, I) (stateless, from int [2] `seed`; None = random).

        labels: int [num] label ids for a conditioned model; None cycles through the labels (0, 1, ..., 0, ...).
        Returns `{"audio": float32 [num, N]}`.
        """
        z = tf.random.stateless_normal(tf.stack([num, self.latent_dim]), seed=stateless_seed(seed))
        if self.num_labels and labels is None:
            labels = tf.math.floormod(tf.range(num), self.num_labels)
        elif labels is not None and not self.num_labels:
            raise ValueError("this model is not conditioned on a label")
        return self.decode(z * tf.cast(temperature, tf.float32), labels=labels)

    def reconstruct(self, audio, labels=None):
        """audio float32 [B, N] or [N] (+ label ids [B]) -> decode(z_mean): `{"audio": float32 [B, N]}`."""
        audio = self._audio(audio)
        if self.num_labels and labels is None:
            raise ValueError(f"this model is conditioned on {self.label_key!r}: pass labels to reconstruct")
        labels = None if labels is None else tf.cast(tf.reshape(labels, [-1]), tf.int32)
        mean, _ = self.encode_audio(audio, labels, training=False)
        return self.decode(mean, labels=labels)

    def get_config(self):
        return {"name": self.name, "frame_length": self.frame_length, "latent_dim": self.latent_dim,
                "layout": self.layout, "encoder_filters": list(self.encoder_filters),
                "decoder_filters": list(self.decoder_filters), "kernel_size": self.kernel_size,
                "strides": list(self.strides), "num_labels": self.num_labels, "label_key": self.label_key,
                "label_embedding_dim": self.label_embedding_dim, "spectral_weight": self.spectral_weight,
                "fft_sizes": list(self.fft_sizes), "adam_epsilon": self.adam_epsilon, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

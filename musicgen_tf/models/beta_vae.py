"""β-VAEs on flat vectors: a pitch-histogram VAE (seed 000) and a one-hot melody-window VAE (seed 002).

Both are the same model around a different MLP and a different input/output:

    x float32 [B, D] ──encoder MLP──> h ──Dense──> z_mean, ──Dense──> z_log_var          float32 [B, latent]
    z = z_mean + exp(0.5 * z_log_var) * eps      eps ~ N(0, I) drawn from the model's `NoiseSource` (training)
    logits = decoder MLP(z) float32 [B, D];  probabilities = sigmoid(logits)

Loss, per batch (`BetaVAE.compute_losses`):
    reconstruction = BCE(x, sigmoid(logits))     "sum": summed over D, mean over B  (nats per example)
                                                 "mean": mean over B x D            (seed 002's sum / numel)
    kl             = -0.5 * sum_latent(1 + log_var - mean^2 - exp(log_var)), mean over B   (nats per example)
    loss           = reconstruction + beta * kl (+ model terms below)
`fit` reports `loss`, `reconstruction_loss`, `kl` and the model's extra metrics.  Seed 002 divides the BCE by the
number of elements (window x vocab ≈ 5900) but sums the KL, so β = 0.5 makes ignoring z cheaper than using it and
the model tends to decode one average window (posterior collapse; seen on tiny data).  `reconstruction_reduction=
"sum"` keeps the same network and reconstructs its inputs (tested).  The seed also summed the KL over the batch;
here it is averaged, as the BCE is.

`PitchHistogramBetaVAE` (seed 000): D = 128 pitch probabilities.  Encoder Dense(512) -> LayerNorm -> SiLU ->
ResidualBlock(512) x N -> Dense(256) -> LayerNorm -> SiLU; the decoder mirrors it and ends in Dense(128) + sigmoid;
He-normal kernels.  The BCE is summed over the 128 pitches (seed 000 does not say; the per-example gain of
knowing a piece is under a nat, so a mean over pitches would leave z unused).  Extra term `consistency` = mean over batch and the 127 neighbour pairs of
(p[i+1] - p[i])^2 on the sigmoid outputs, weighted by `consistency_weight` (0.2).  Extra metric `sample_entropy`:
mean entropy in bits of the histograms decoded from `entropy_samples` fixed prior draws (seed 000 printed the
entropy of its samples every 10 epochs; here it is logged every epoch at no noticeable cost).

`MelodyBetaVAE` (seed 002): D = window x vocab_size, the one-hot symbols of one window flattened.  Encoder
Dense(H) -> ReLU -> Dropout(0.5) -> Dense(H) -> ReLU; decoder Dense(H) -> ReLU -> Dense(H) -> ReLU -> Dropout(0.5)
-> Dense(D) + sigmoid; Xavier-uniform kernels, biases 0.01 (the seed's `init_weights`).  PyTorch's
`Adam(weight_decay=1e-5)` adds `weight_decay * w` to every gradient (L2, *not* AdamW's decoupled decay); the
model reproduces it by adding `0.5 * l2_weight_decay * sum(w^2)` over all trainable weights (biases included, as
PyTorch) to the objective it differentiates, so the preset uses plain Adam.  The reported `loss` is the seed's
(BCE + beta * KL) without that term.

Melody windows (in-graph, so the trainer stays model-agnostic): batches are whole songs `{"tokens": int64 [B, L]}`
zero-padded at the end (PAD id 0; real symbols are >= 1).  In `train_step` each song gives one window of `window`
symbols ending at a random position `end` in the song; positions before the song's start are the seed's "/"
delimiter.  With `lead_in=True` (default) `end` is uniform in [1, length], so windows also cover a song's opening
with 0..window-1 leading delimiters, as the seed's corpus string (songs joined by `window` delimiters, every
offset a training window) does, and a short typed prompt is in distribution.  With `lead_in=False`, `end` is
uniform in [min(length, window), length]: full windows only, songs shorter than the window padded with "/" at the
start.  Evaluation, `call` and `encode` use the song's opening window (`end = min(length, window)`), so an input
that already is a window comes back unchanged.

Generation (graph-friendly: `tf.random.stateless_*` draws from an int [2] seed, `tf.while_loop`):
- `sample(num, temperature, seed)`: z = temperature * N(0, I) (seed 000's `randn * temperature`), then the outputs
  are tempered: a histogram becomes q ∝ p^(1/T) (normalised; lower T -> lower entropy), melody symbols are drawn
  per position from softmax(log p / T) over the vocabulary without PAD (T <= 1e-4: argmax).
- `decode(z)`: histogram models return the normalised decoded distribution (no sampling step, temperature ignored);
  melody models sample symbols as above.
- `encode(inputs)` -> (z_mean, z_log_var), the log-variance (not sigma: MusicVAE's `encode` returns sigma).
- `interpolate(a, b, steps)`: decodes of `steps` points on the straight line between the two z means
  (melodies greedily), so rows 0 and -1 are the reconstructions of a and b.
- `MelodyBetaVAE.continue_melody(prompt, steps, temperature, seed)`: a reconstruction VAE has no "next symbol"
  head, so each new symbol is a reconstruction of an unknown slot: the last `window - 1` symbols (the prompt's
  start padded with "/"), followed by an all-zero one-hot row for the unknown slot, are encoded; the posterior mean
  is decoded and the slot's symbol is drawn from the decoded last position (tempered, PAD and "/" excluded); the
  window slides by one.  The prompt is copied into the output and never rewritten.

Randomness: reparameterisation noise, melody windows and melody dropout all come from keras `SeedGenerator`s
wrapped in `NoiseSource` layers whose states are saved with the weights (Keras does not save seed-generator
states), so a run resumed from a checkpoint continues the same random stream.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from musicgen_tf.models.common import LossDictModel, NoiseSource, stateless_seed

GREEDY_TEMPERATURE = 1e-4  # temperatures at or below this pick the most likely symbol
REDUCTIONS = ("sum", "mean")
_LOG_FLOOR = 1e-12


# -- losses and helpers (pure functions, tested on hand-computed values) ----------------------------------------------

def binary_cross_entropy(targets, logits):
    """Element-wise BCE of sigmoid(logits) against targets in [0, 1]: float32 [...] x2 -> float32 [...] nats.

    Equals PyTorch's `binary_cross_entropy(sigmoid(logits), targets, reduction="none")`, computed from the logits
    for numerical stability.
    """
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(targets, tf.float32),
                                                   logits=tf.cast(logits, tf.float32))


def reconstruction_loss(targets, logits, reduction="sum"):
    """BCE float32 [B, D] x2 -> scalar: "sum" = summed over D, mean over B; "mean" = mean over all B x D."""
    bce = binary_cross_entropy(targets, logits)
    if reduction == "sum":
        return tf.reduce_mean(tf.reduce_sum(bce, axis=-1))
    if reduction == "mean":
        return tf.reduce_mean(bce)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def kl_divergence(z_mean, z_log_var):
    """KL(N(mean, exp(log_var)) || N(0, I)) per example: float32 [B, latent] x2 -> float32 [B] nats."""
    z_mean, z_log_var = tf.cast(z_mean, tf.float32), tf.cast(z_log_var, tf.float32)
    return -0.5 * tf.reduce_sum(1.0 + z_log_var - tf.square(z_mean) - tf.exp(z_log_var), axis=-1)


def adjacent_consistency(probabilities):
    """Mean squared difference of neighbouring outputs: float32 [B, D] -> scalar (mean over B x (D - 1))."""
    probabilities = tf.cast(probabilities, tf.float32)
    return tf.reduce_mean(tf.square(probabilities[:, 1:] - probabilities[:, :-1]))


def temper(probabilities, temperature):
    """Independent probabilities float32 [..., D] -> distribution q ∝ p^(1/T) over the last axis, float32 [..., D].

    T = 1 is p normalised; T -> 0 tends to one-hot at the argmax, T -> inf to uniform.
    """
    temperature = tf.maximum(tf.cast(temperature, tf.float32), GREEDY_TEMPERATURE)
    log_p = tf.math.log(tf.maximum(tf.cast(probabilities, tf.float32), _LOG_FLOOR))
    return tf.nn.softmax(log_p / temperature, axis=-1)


def entropy_bits(distribution):
    """Shannon entropy in bits of distributions float32 [..., D] (summing to 1) -> float32 [...]."""
    p = tf.cast(distribution, tf.float32)
    return -tf.reduce_sum(tf.where(p > 0, p * tf.math.log(tf.maximum(p, _LOG_FLOOR)), 0.0), axis=-1) / math.log(2.0)


# -- layers -----------------------------------------------------------------------------------------------------------

class ResumableDropout(NoiseSource):
    """`keras.layers.Dropout` whose random state is part of the checkpoint (see `NoiseSource`)."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = float(rate)

    def call(self, x, training=False):
        if training and self.rate > 0:
            return self.dropout(x, self.rate)
        return x

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class ResidualBlock(keras.layers.Layer):
    """x float [B, U] -> SiLU(x + LN(Dense(SiLU(LN(Dense(x)))))), float [B, U] (seed 000's residual block)."""

    def __init__(self, units, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.dense_1 = keras.layers.Dense(self.units, kernel_initializer=kernel_initializer, name="dense_1")
        self.norm_1 = keras.layers.LayerNormalization(name="norm_1")
        self.dense_2 = keras.layers.Dense(self.units, kernel_initializer=kernel_initializer, name="dense_2")
        self.norm_2 = keras.layers.LayerNormalization(name="norm_2")

    def build(self, input_shape=None):
        for layer in (self.dense_1, self.norm_1, self.dense_2, self.norm_2):
            layer.build((None, self.units))
        self.built = True

    def call(self, x):
        h = keras.activations.silu(self.norm_1(self.dense_1(x)))
        return keras.activations.silu(x + self.norm_2(self.dense_2(h)))


class ResidualMlp(keras.layers.Layer):
    """Seed 000's encoder or decoder trunk: float [B, in] -> float [B, units[-1]].

    Dense(units[0]) -> LayerNorm -> SiLU, then for each further width u: Dense(u) -> LayerNorm -> SiLU; the
    `num_blocks` ResidualBlocks run at width `units[0]` right after the first layer (encoder, units (512, 256)) or
    at `units[-1]` after the last (decoder, units (256, 512)), i.e. at the 512-wide end in both.
    """

    def __init__(self, units, num_blocks, blocks_at="first", kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        if blocks_at not in ("first", "last"):
            raise ValueError(f"blocks_at must be 'first' or 'last', got {blocks_at!r}")
        self.units, self.num_blocks, self.blocks_at = tuple(int(u) for u in units), int(num_blocks), blocks_at
        self.denses = [keras.layers.Dense(u, kernel_initializer=kernel_initializer, name=f"dense_{i}")
                       for i, u in enumerate(self.units)]
        self.norms = [keras.layers.LayerNormalization(name=f"norm_{i}") for i in range(len(self.units))]
        block_units = self.units[0] if blocks_at == "first" else self.units[-1]
        self.blocks = [ResidualBlock(block_units, kernel_initializer, name=f"residual_{i}")
                       for i in range(self.num_blocks)]

    def build(self, input_shape):
        depth = input_shape[-1]
        for dense, norm, units in zip(self.denses, self.norms, self.units):
            dense.build((None, depth))
            norm.build((None, units))
            depth = units
        for block in self.blocks:
            block.build()
        self.built = True

    def call(self, x, training=False):
        last = len(self.denses) - 1
        for i, (dense, norm) in enumerate(zip(self.denses, self.norms)):
            x = keras.activations.silu(norm(dense(x)))
            if (i == 0 and self.blocks_at == "first") or (i == last and self.blocks_at == "last"):
                for block in self.blocks:
                    x = block(x)
        return x


class DropoutMlp(keras.layers.Layer):
    """Seed 002's two-layer ReLU trunk: float [B, in] -> float [B, units].

    encoder (`dropout_after=0`): Dense -> ReLU -> Dropout -> Dense -> ReLU;
    decoder (`dropout_after=1`): Dense -> ReLU -> Dense -> ReLU -> Dropout.
    """

    def __init__(self, units, dropout, dropout_after, kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.rate, self.dropout_after = int(units), float(dropout), int(dropout_after)
        self.denses = [keras.layers.Dense(self.units, activation="relu", kernel_initializer=kernel_initializer,
                                          bias_initializer=bias_initializer, name=f"dense_{i}") for i in range(2)]
        self.dropout = ResumableDropout(self.rate, seed=seed, name="dropout")

    def build(self, input_shape):
        self.denses[0].build((None, input_shape[-1]))
        self.denses[1].build((None, self.units))
        self.built = True

    def call(self, x, training=False):
        for i, dense in enumerate(self.denses):
            x = dense(x)
            if i == self.dropout_after:
                x = self.dropout(x, training=training)
        return x


# -- the shared model -------------------------------------------------------------------------------------------------

class BetaVAE(LossDictModel):
    """MLP β-VAE over a flat float32 [B, D] vector; subclasses say what the vector is and how to sample it.

    Subclasses set `feature_key`, `extra_metric_names`, build `self.encoder` / `self.decoder_trunk` /
    `self.output_layer` and implement `features(inputs, training)` and `decode(z, temperature, seed)`.
    `call(inputs, training)` -> `{"logits", "probabilities": float32 [B, D], "z_mean", "z_log_var": float32
    [B, latent_dim]}` (z is sampled when training, the mean otherwise).
    """

    feature_key = ""
    extra_metric_names: tuple[str, ...] = ()
    interpolation_temperature = 1.0

    def __init__(self, input_dim, latent_dim, beta, reconstruction_reduction, seed, kernel_initializer,
                 bias_initializer, **kwargs):
        super().__init__(**kwargs)
        if reconstruction_reduction not in REDUCTIONS:
            raise ValueError(f"reconstruction_reduction must be one of {REDUCTIONS}, got {reconstruction_reduction!r}")
        self.input_dim, self.latent_dim = int(input_dim), int(latent_dim)
        self.beta, self.reconstruction_reduction, self.seed = float(beta), reconstruction_reduction, seed
        self.noise = NoiseSource(seed, name="noise")
        self.z_mean_dense = keras.layers.Dense(self.latent_dim, kernel_initializer=kernel_initializer,
                                               bias_initializer=bias_initializer, dtype="float32", name="z_mean")
        self.z_log_var_dense = keras.layers.Dense(self.latent_dim, kernel_initializer=kernel_initializer,
                                                  bias_initializer=bias_initializer, dtype="float32",
                                                  name="z_log_var")
        self.output_layer = keras.layers.Dense(self.input_dim, kernel_initializer=kernel_initializer,
                                               bias_initializer=bias_initializer, dtype="float32", name="logits")
        self.metric_names = ("loss", "reconstruction_loss", "kl") + self.extra_metric_names
        self.create_trackers()

    def build(self, input_shape=None):
        """Create every weight from the config alone (so checkpoints load into a fresh `from_config` model)."""
        self.encoder.build((None, self.input_dim))
        hidden = self.encoder_output_dim
        self.z_mean_dense.build((None, hidden))
        self.z_log_var_dense.build((None, hidden))
        self.decoder_trunk.build((None, self.latent_dim))
        self.output_layer.build((None, self.decoder_output_dim))
        self.built = True

    # -- inputs ------------------------------------------------------------------------------------------------------

    def features(self, inputs, training=False):
        """Batch dict -> x float32 [B, input_dim] (the VAE's input and reconstruction target)."""
        raise NotImplementedError

    @property
    def input_keys(self) -> tuple[str, ...]:
        return (self.feature_key,)

    def select_inputs(self, dataset):
        """Drop the keys the model does not read (`source/key` strings cannot enter an XLA-compiled step)."""
        if isinstance(dataset, tf.data.Dataset) and isinstance(dataset.element_spec, dict):
            keys = [k for k in self.input_keys if k in dataset.element_spec]
            return dataset.map(lambda batch: {k: batch[k] for k in keys}, num_parallel_calls=tf.data.AUTOTUNE)
        return dataset

    def fit(self, x=None, *args, validation_data=None, **kwargs):
        return super().fit(self.select_inputs(x), *args, validation_data=self.select_inputs(validation_data),
                           **kwargs)

    def evaluate(self, x=None, *args, **kwargs):
        return super().evaluate(self.select_inputs(x), *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        return super().predict(self.select_inputs(x), *args, **kwargs)

    def _batched(self, inputs):
        """A batch dict, one unbatched example (dict or bare array) -> `{feature_key: [B, ...]}`."""
        value = inputs[self.feature_key] if isinstance(inputs, dict) else inputs
        value = tf.convert_to_tensor(value)
        return {self.feature_key: value[None] if value.shape.rank == 1 else value}

    # -- network -----------------------------------------------------------------------------------------------------

    def encode_features(self, x, training=False):
        """x float32 [B, input_dim] -> (z_mean, z_log_var), float32 [B, latent_dim]."""
        h = self.encoder(x, training=training)
        return self.z_mean_dense(h), self.z_log_var_dense(h)

    def decode_logits(self, z, training=False):
        """z float [B, latent_dim] -> logits float32 [B, input_dim] (probabilities = sigmoid)."""
        return self.output_layer(self.decoder_trunk(tf.cast(z, self.compute_dtype), training=training))

    def reparameterize(self, z_mean, z_log_var):
        """z = mean + exp(log_var / 2) * eps, eps ~ N(0, I) from the model's saved noise stream."""
        return z_mean + tf.exp(0.5 * z_log_var) * self.noise.normal(tf.shape(z_mean))

    def forward(self, inputs, training=False):
        """Batch dict -> (x float32 [B, input_dim], outputs dict as `call`)."""
        x = self.features(inputs, training=training)
        z_mean, z_log_var = self.encode_features(x, training=training)
        z = self.reparameterize(z_mean, z_log_var) if training else z_mean
        logits = self.decode_logits(z, training=training)
        return x, {"logits": logits, "probabilities": tf.sigmoid(logits), "z_mean": z_mean, "z_log_var": z_log_var}

    def call(self, inputs, training=False):
        return self.forward(inputs, training=training)[1]

    # -- losses ------------------------------------------------------------------------------------------------------

    def extra_terms(self, x, outputs):
        """Model-specific (loss term added to `loss`, metrics dict); default none."""
        return 0.0, {}

    def penalty(self):
        """Added to the differentiated objective only (not reported in `loss`); default none."""
        return 0.0

    def compute_losses(self, inputs, training=False):
        """One batch -> dict of float32 scalars: loss, reconstruction_loss, kl (+ extras) and `objective`."""
        x, outputs = self.forward(inputs, training=training)
        reconstruction = reconstruction_loss(x, outputs["logits"], self.reconstruction_reduction)
        kl = tf.reduce_mean(kl_divergence(outputs["z_mean"], outputs["z_log_var"]))
        extra_loss, extra_metrics = self.extra_terms(x, outputs)
        loss = reconstruction + self.beta * kl + extra_loss
        return {"loss": loss, "reconstruction_loss": reconstruction, "kl": kl, **extra_metrics,
                "objective": loss + self.penalty() if training else loss}

    # -- generation --------------------------------------------------------------------------------------------------

    def encode(self, inputs):
        """Batch dict or one example -> (z_mean, z_log_var), float32 [B, latent_dim] (deterministic)."""
        return self.encode_features(self.features(self._batched(inputs), training=False))

    def decode(self, z, temperature=1.0, seed=None):
        raise NotImplementedError

    def sample_outputs(self, z, temperature, seed):
        """What `sample` returns for latent draws z; default: `decode`."""
        return self.decode(z, temperature=temperature, seed=seed)

    def sample(self, num, temperature=1.0, seed=None, labels=None):
        """`num` pieces from the prior: z = temperature * N(0, I), outputs tempered by `temperature`.

        num: int or int32 scalar; temperature: float scalar; seed: int [2] (reproducible) or None.
        `labels` exists for the shared generation interface; these models are unconditioned.
        """
        if labels is not None:
            raise ValueError(f"{type(self).__name__} is not conditioned on a label")
        z_seed, output_seed = tf.unstack(tf.random.experimental.stateless_split(stateless_seed(seed), 2))
        z = tf.random.stateless_normal(tf.stack([num, self.latent_dim]), seed=z_seed)
        return self.sample_outputs(z * tf.cast(temperature, tf.float32), temperature, output_seed)

    def interpolate(self, inputs_a, inputs_b, steps, temperature=None, labels=None):
        """Decodes of `steps` evenly spaced points on the line from z_mean(a) to z_mean(b) (both included).

        inputs_a, inputs_b: one example each (dict or bare array, batch dim of 1 optional).  temperature: None =
        the model's deterministic decode (histograms: the decoded distribution; melodies: argmax).
        """
        if labels is not None:
            raise ValueError(f"{type(self).__name__} is not conditioned on a label")
        z_a, z_b = self.encode(inputs_a)[0][0], self.encode(inputs_b)[0][0]
        t = tf.linspace(0.0, 1.0, steps)[:, None]
        z = (1.0 - t) * z_a + t * z_b
        temperature = self.interpolation_temperature if temperature is None else temperature
        return self.decode(z, temperature=temperature, seed=[0, 0])

    def get_config(self):
        return {"name": self.name, "latent_dim": self.latent_dim, "beta": self.beta,
                "reconstruction_reduction": self.reconstruction_reduction, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


# -- seed 000: pitch histograms ----------------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="musicgen_tf")
class PitchHistogramBetaVAE(BetaVAE):
    """β-VAE over normalised pitch histograms `{"histogram": float32 [B, 128]}` (seed 000).

    `sample` / `decode` / `interpolate` return `{"histogram": float32 [N, input_dim]}` rows that sum to 1
    (`PitchHistogramConverter.from_example` input).  Defaults are the seed's.
    """

    feature_key = "histogram"
    extra_metric_names = ("consistency", "sample_entropy")
    interpolation_temperature = 1.0

    def __init__(self, input_dim=128, hidden_units=(512, 256), num_residual_blocks=2, latent_dim=128, beta=0.5,
                 consistency_weight=0.2, reconstruction_reduction="sum", entropy_samples=64, seed=None, **kwargs):
        super().__init__(input_dim, latent_dim, beta, reconstruction_reduction, seed,
                         kernel_initializer="he_normal", bias_initializer="zeros", **kwargs)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.num_residual_blocks = int(num_residual_blocks)
        self.consistency_weight, self.entropy_samples = float(consistency_weight), int(entropy_samples)
        self.encoder = ResidualMlp(self.hidden_units, self.num_residual_blocks, "first", name="encoder")
        self.decoder_trunk = ResidualMlp(self.hidden_units[::-1], self.num_residual_blocks, "last", name="decoder")
        self.encoder_output_dim = self.hidden_units[-1]
        self.decoder_output_dim = self.hidden_units[0]
        self.build()

    def features(self, inputs, training=False):
        return tf.cast(inputs[self.feature_key], tf.float32)

    def extra_terms(self, x, outputs):
        consistency = adjacent_consistency(outputs["probabilities"])
        # Entropy of decodes at fixed prior points (no gradient, no draw from the training noise).
        z = tf.random.stateless_normal([self.entropy_samples, self.latent_dim], seed=[0, 0])
        histograms = temper(tf.sigmoid(tf.stop_gradient(self.decode_logits(z))), 1.0)
        entropy = tf.reduce_mean(entropy_bits(histograms))
        return self.consistency_weight * consistency, {"consistency": consistency, "sample_entropy": entropy}

    def decode(self, z, temperature=1.0, seed=None):
        """z float32 [N, latent] -> `{"histogram": float32 [N, D]}`, the decoded probabilities normalised to sum 1.

        Deterministic: a histogram has no sampling step; `temperature` and `seed` are accepted and ignored (use
        `sample` or `temper` for tempered histograms).
        """
        return {"histogram": temper(tf.sigmoid(self.decode_logits(z)), 1.0)}

    def sample_outputs(self, z, temperature, seed):
        return {"histogram": temper(tf.sigmoid(self.decode_logits(z)), temperature)}

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "hidden_units": list(self.hidden_units),
                "num_residual_blocks": self.num_residual_blocks, "consistency_weight": self.consistency_weight,
                "entropy_samples": self.entropy_samples}


# -- seed 002: one-hot melody windows ----------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="musicgen_tf")
class MelodyBetaVAE(BetaVAE):
    """β-VAE over one-hot windows of melody symbols (seed 002's "60 _ _ r" time series).

    Inputs: `{"tokens": int [B, L]}`, whole songs zero-padded at the end (or windows); see the module docstring
    for how windows are cut.  `sample` / `decode` / `interpolate` return tokens int64 [N, window];
    `continue_melody` returns int64 [P + steps].  Sizes come from the converter (`vocab_size`, `delimiter_id`,
    `pad_id`); the other defaults are the seed's.
    """

    feature_key = "tokens"
    interpolation_temperature = 0.0

    def __init__(self, vocab_size=92, window=64, hidden_units=256, latent_dim=50, dropout=0.5, beta=0.5,
                 l2_weight_decay=1e-5, lead_in=True, pad_id=0, delimiter_id=1, reconstruction_reduction="mean",
                 seed=None, **kwargs):
        super().__init__(int(window) * int(vocab_size), latent_dim, beta, reconstruction_reduction, seed,
                         kernel_initializer="glorot_uniform", bias_initializer=keras.initializers.Constant(0.01),
                         **kwargs)
        self.vocab_size, self.window = int(vocab_size), int(window)
        if not 0 <= pad_id < self.vocab_size or not 0 <= delimiter_id < self.vocab_size or pad_id == delimiter_id:
            raise ValueError(f"pad_id {pad_id} and delimiter_id {delimiter_id} must be distinct ids < {vocab_size}")
        self.hidden_units, self.dropout = int(hidden_units), float(dropout)
        self.l2_weight_decay, self.lead_in = float(l2_weight_decay), bool(lead_in)
        self.pad_id, self.delimiter_id = int(pad_id), int(delimiter_id)
        init = dict(kernel_initializer="glorot_uniform", bias_initializer=keras.initializers.Constant(0.01))
        dropout_seed = None if seed is None else int(seed) + 1
        self.encoder = DropoutMlp(self.hidden_units, self.dropout, 0, seed=dropout_seed, name="encoder", **init)
        self.decoder_trunk = DropoutMlp(self.hidden_units, self.dropout, 1,
                                        seed=None if seed is None else int(seed) + 2, name="decoder", **init)
        self.encoder_output_dim = self.decoder_output_dim = self.hidden_units
        self.build()

    # -- windows -----------------------------------------------------------------------------------------------------

    def window_tokens(self, tokens, training=False):
        """Songs int [B, L] (PAD-padded at the end) -> one window per song, int64 [B, window].

        training: a random window (model's noise stream; see the module docstring); else the opening window.
        """
        tokens = tf.cast(tokens, tf.int64)
        batch, padded_length = tf.shape(tokens)[0], tf.shape(tokens)[1]
        lengths = tf.reduce_sum(tf.cast(tokens != self.pad_id, tf.int32), axis=1)  # [B]
        if training:
            low = tf.minimum(1 if self.lead_in else self.window, lengths)
            u = self.noise.uniform(tf.stack([batch]))
            end = low + tf.cast(tf.floor(u * tf.cast(lengths - low + 1, tf.float32)), tf.int32)
            end = tf.minimum(end, lengths)  # u < 1, but guard against float rounding
        else:
            end = tf.minimum(lengths, self.window)
        positions = end[:, None] - self.window + tf.range(self.window)[None, :]  # [B, window]
        gathered = tf.gather(tokens, tf.clip_by_value(positions, 0, tf.maximum(padded_length - 1, 0)), batch_dims=1)
        return tf.where(positions >= 0, gathered, tf.constant(self.delimiter_id, tf.int64))

    def one_hot(self, windows):
        """int [B, window] -> float32 [B, window * vocab_size]."""
        return tf.reshape(tf.one_hot(windows, self.vocab_size, dtype=tf.float32), [-1, self.input_dim])

    def features(self, inputs, training=False):
        return self.one_hot(self.window_tokens(inputs[self.feature_key], training=training))

    def penalty(self):
        """PyTorch Adam's coupled weight decay: d/dw (0.5 * wd * w^2) = wd * w added to every gradient."""
        if not self.l2_weight_decay:
            return 0.0
        return 0.5 * self.l2_weight_decay * tf.add_n([tf.reduce_sum(tf.square(tf.cast(w, tf.float32)))
                                                      for w in self.trainable_weights])

    # -- generation --------------------------------------------------------------------------------------------------

    def _pick(self, probabilities, temperature, seed, forbidden):
        """probabilities float32 [N, V] -> int64 [N]: drawn from softmax(log p / T) without `forbidden` ids."""
        temperature = tf.cast(temperature, tf.float32)
        mask = tf.reduce_sum(tf.one_hot(list(forbidden), self.vocab_size), axis=0) > 0  # [V]
        scores = tf.math.log(tf.maximum(tf.cast(probabilities, tf.float32), _LOG_FLOOR))
        scores = tf.where(mask[None, :], -1e9, scores)
        drawn = tf.random.stateless_categorical(scores / tf.maximum(temperature, GREEDY_TEMPERATURE), 1,
                                                seed=seed, dtype=tf.int64)[:, 0]
        return tf.where(temperature <= GREEDY_TEMPERATURE, tf.argmax(scores, axis=-1), drawn)

    def decode(self, z, temperature=1.0, seed=None):
        """z float32 [N, latent] -> tokens int64 [N, window], one symbol per position (PAD never drawn).

        temperature <= 1e-4: the most likely symbol per position; seed: int [2] or None.
        """
        probabilities = tf.reshape(tf.sigmoid(self.decode_logits(z)), [-1, self.vocab_size])
        tokens = self._pick(probabilities, temperature, stateless_seed(seed), (self.pad_id,))
        return tf.reshape(tokens, [-1, self.window])

    def continue_melody(self, prompt_tokens, steps, temperature=1.0, seed=None):
        """Prompt int [P] -> int64 [P + steps]: the prompt unchanged, then `steps` symbols (never PAD or "/").

        Each step encodes the previous `window - 1` symbols plus an all-zero (unknown) last slot, decodes the
        posterior mean and draws the last slot (see the module docstring).  seed: int [2] or None.
        """
        prompt = tf.reshape(tf.cast(tf.convert_to_tensor(prompt_tokens), tf.int64), [-1])
        prompt_length = tf.shape(prompt)[0]
        steps = tf.cast(steps, tf.int32)
        seed = stateless_seed(seed)
        context = self.window - 1
        buffer = tf.concat([prompt, tf.zeros(tf.stack([steps]), tf.int64)], axis=0)
        forbidden = (self.pad_id, self.delimiter_id)

        def body(t, buffer):
            slot = prompt_length + t
            positions = slot - context + tf.range(context)
            previous = tf.where(positions >= 0, tf.gather(buffer, tf.maximum(positions, 0)),
                                tf.constant(self.delimiter_id, tf.int64))
            x = tf.concat([tf.one_hot(previous, self.vocab_size, dtype=tf.float32),
                           tf.zeros([1, self.vocab_size])], axis=0)
            z_mean, _ = self.encode_features(tf.reshape(x, [1, self.input_dim]))
            probabilities = tf.reshape(tf.sigmoid(self.decode_logits(z_mean)), [self.window, self.vocab_size])
            token = self._pick(probabilities[-1:], temperature, tf.random.experimental.stateless_fold_in(seed, t),
                               forbidden)
            return t + 1, tf.tensor_scatter_nd_update(buffer, [[slot]], token)

        _, buffer = tf.while_loop(lambda t, _: t < steps, body, (tf.constant(0), buffer))
        return buffer

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "window": self.window,
                "hidden_units": self.hidden_units, "dropout": self.dropout, "l2_weight_decay": self.l2_weight_decay,
                "lead_in": self.lead_in, "pad_id": self.pad_id, "delimiter_id": self.delimiter_id}

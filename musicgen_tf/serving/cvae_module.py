"""Serving signatures of the audio VAE (`musicgen_tf.models.resnet_cvae.ResnetCVAE`).

    sample(genre_id, num, temperature, seed) -> audio float32 [num, N]      N = frame_length, in [-1, 1]
    reconstruct(audio [, genre_id])          -> audio float32 [n, N]        decode(z_mean), deterministic
    encode(audio [, genre_id])               -> z_mean, z_log_var float32 [n, latent]
    decode(z [, genre_id])                   -> audio float32 [n, N]

Label ids (`<label>_id`, "genre_id" for the GTZAN presets; names in musicgen.json schema.labels) are int64 [num] or
[1] (one id for every row); -1 means "no particular genre": row i gets id i mod num_labels, the cycle
`ResnetCVAE.sample` uses without labels.  `sample` always takes the input (an unconditioned model, trained on one
genre, ignores it) so clients call every audio model alike; encode / decode / reconstruct take it only when the model
is conditioned.  All four are deterministic given their inputs (`sample` draws z = temperature * N(0, I) from the
stateless `seed`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from musicgen_tf.serving.export import NUM, SEED, SEED_VALUE, TEMPERATURE, ServingModule, Signature, Tensor


class ResnetCVAEServing(ServingModule):
    """`sample`, `reconstruct`, `encode`, `decode` of a trained `ResnetCVAE`."""

    def __init__(self, run, metadata=None):
        self.label_name = f"{run.model.label_key}_id"
        self.conditioned = run.model.num_labels > 0
        super().__init__(run, metadata)

    def _labels(self, inputs, count):
        """int64 ids [1] or [count] (-1 = cycle) -> int32 [count], or None for an unconditioned model."""
        model = self.run.model
        if not self.conditioned:
            return None
        ids = tf.cast(tf.broadcast_to(inputs[self.label_name], [count]), tf.int32)
        return tf.where(ids < 0, tf.math.floormod(tf.range(count), model.num_labels), ids)

    def _example_labels(self, count) -> dict:
        if not self.conditioned:
            return {}
        return {self.label_name: np.array([0, -1] * count, np.int64)[:count]}

    def signatures(self):
        model = self.run.model
        n, latent = model.frame_length, model.latent_dim
        label_doc = (f"{self.label_name[:-3]} ids (musicgen.json schema.labels), [n] or [1] for all; -1 = cycle "
                     "through the labels")
        label = {self.label_name: Tensor(tf.int64, (None,), label_doc)} if self.conditioned else {}
        audio_in = Tensor(tf.float32, (None, n), f"clips in [-1, 1] at the converter's sample rate, n x {n}")

        def audio_out(rows):
            return {"audio": Tensor(tf.float32, (None, n), f"audio in [-1, 1], {rows} x {n}")}

        def sample(inputs):
            return model.sample(inputs["num"], temperature=inputs["temperature"], seed=inputs["seed"],
                                labels=self._labels(inputs, inputs["num"]))

        def reconstruct(inputs):
            return model.reconstruct(inputs["audio"], labels=self._labels(inputs, tf.shape(inputs["audio"])[0]))

        def encode(inputs):
            audio = inputs["audio"]
            mean, logvar = model.encode_audio(audio, self._labels(inputs, tf.shape(audio)[0]), training=False)
            return {"z_mean": mean, "z_log_var": logvar}

        def decode(inputs):
            return model.decode(inputs["z"], labels=self._labels(inputs, tf.shape(inputs["z"])[0]))

        def clips(rng, count):
            t = np.arange(n) / 8000.0
            freqs = rng.uniform(110.0, 880.0, (count, 1))
            return (0.3 * np.sin(2 * np.pi * freqs * t[None])).astype(np.float32)

        sample_label = {self.label_name: Tensor(tf.int64, (None,), label_doc if self.conditioned else
                                                "ignored: this model is not conditioned (pass [-1])")}
        return {
            "sample": Signature(
                "`num` clips decoded from z = temperature * N(0, I) (stateless draws from `seed`)",
                {**sample_label, "num": NUM, "temperature": TEMPERATURE, "seed": SEED}, audio_out("num"), sample,
                lambda rng: {self.label_name: np.array([0, -1, -1], np.int64), "num": np.int32(3),
                             "temperature": np.float32(0.8), "seed": SEED_VALUE}),
            "reconstruct": Signature(
                "each clip encoded to its posterior mean and decoded (deterministic)", {"audio": audio_in, **label},
                audio_out("n"), reconstruct, lambda rng: {"audio": clips(rng, 2), **self._example_labels(2)}),
            "encode": Signature(
                "posterior N(z_mean, exp(z_log_var)) of each clip", {"audio": audio_in, **label},
                {"z_mean": Tensor(tf.float32, (None, latent), "posterior means, n x latent"),
                 "z_log_var": Tensor(tf.float32, (None, latent), "posterior log-variances, n x latent")},
                encode, lambda rng: {"audio": clips(rng, 2), **self._example_labels(2)}),
            "decode": Signature(
                "audio decoded from latent vectors (deterministic)",
                {"z": Tensor(tf.float32, (None, latent), "latent vectors, n x latent"), **label},
                audio_out("n"), decode,
                lambda rng: {"z": rng.standard_normal((2, latent)).astype(np.float32), **self._example_labels(2)}),
        }

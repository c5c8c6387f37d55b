"""Serving signatures of the REMI Transformer-XL (`musicgen_tf.models.transformer_xl.TransformerXL`).

    generate(num, num_bars, temperature, top_k, max_tokens, seed) -> tokens int64 [num, L], lengths int32 [num]
    continue(prompt_tokens, num, num_bars, temperature, top_k, max_tokens, seed) -> tokens, lengths

Both run the model's cached decoding loop (`TransformerXL._decode_loop`: per-layer key/value buffers of
mem_len + segment_len slots, shifted by a segment when one fills) inside the graph, with stateless draws folded from
`seed`, so a seed gives the tokens `TransformerXL.generate` / `continue_tokens` give in Keras.

`max_tokens` is an input: the cap on a row's length (the prompt counts), because TF Serving has no other place for a
per-request bound on the loop.  A row that reaches it before `num_bars` bars ends without EOS.  L is the longest row;
shorter rows are PAD (0) after their EOS; `lengths` counts each row's tokens up to and including EOS.

The signature key `continue` is a Python keyword, so its `tf.function` is `continue_tokens` in the code.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from musicgen_tf.serving.export import NUM, SEED, SEED_VALUE, TEMPERATURE, ServingModule, Signature, Tensor, _scalar

INT32_SEED_MODULUS = 2**31 - 1  # as TransformerXL._run_decode: the int64 seed pair, mod 2^31 - 1, as int32

NUM_BARS = _scalar(tf.int32, "bars to generate (generate: in total; continue: after the prompt's bars)")
TOP_K = _scalar(tf.int32, "sample among the k most likely tokens; 0 = all")
MAX_TOKENS = _scalar(tf.int32, "cap on each row's length in tokens, prompt included (a row that reaches it before "
                               "num_bars bars has no EOS)")


class TransformerXLServing(ServingModule):
    """`generate` and `continue` of a trained `TransformerXL`, cached generation in-graph."""

    def _decode(self, prompt, inputs):
        """int32 prompt [P >= 1] -> {"tokens": int64 [num, L] trimmed to the longest row, "lengths": int32 [num]}."""
        model = self.run.model
        seed = tf.cast(tf.math.floormod(inputs["seed"], INT32_SEED_MODULUS), tf.int32)
        tokens, lengths = model._decode_loop(prompt, inputs["num"], inputs["max_bars"], inputs["max_tokens"],
                                             inputs["temperature"], inputs["top_k"], seed)
        return {"tokens": tf.cast(tokens[:, :tf.reduce_max(lengths)], tf.int64), "lengths": lengths}

    def _example_prompt(self, rng) -> np.ndarray:
        """Two bars of random (non-special) tokens, with a PAD and an EOS that `continue` must drop."""
        model = self.run.model
        special = {model.pad_id, model.eos_id, model.bar_id}  # anywhere in an imported dictionary's order
        notes = rng.choice([i for i in range(model.vocab_size) if i not in special], 8).astype(np.int64)
        return np.concatenate([[model.bar_id], notes[:4], [model.bar_id], notes[4:], [model.pad_id, model.eos_id]])

    def signatures(self):
        model = self.run.model

        def generate(inputs):
            prompt = tf.constant([model.bar_id], tf.int32)
            return self._decode(prompt, {**inputs, "max_bars": inputs["num_bars"]})

        def continue_tokens(inputs):  # as TransformerXL.continue_tokens, in graph
            prompt = inputs["prompt_tokens"]
            prompt = tf.boolean_mask(prompt, tf.not_equal(prompt, model.pad_id) & tf.not_equal(prompt, model.eos_id))
            prompt = tf.cond(tf.size(prompt) > 0, lambda: tf.cast(prompt, tf.int32),
                             lambda: tf.constant([model.bar_id], tf.int32))
            bars = tf.reduce_sum(tf.cast(tf.equal(prompt, model.bar_id), tf.int32)) + inputs["num_bars"]
            max_tokens = tf.maximum(inputs["max_tokens"], tf.size(prompt) + 1)
            return self._decode(prompt, {**inputs, "max_bars": bars, "max_tokens": max_tokens})

        outputs = {"tokens": Tensor(tf.int64, (None, None), "REMI ids, num x L (PAD=0 after EOS)"),
                   "lengths": Tensor(tf.int32, (None,), "tokens per row up to and including EOS")}
        common = {"num": NUM, "num_bars": NUM_BARS, "temperature": TEMPERATURE, "top_k": TOP_K,
                  "max_tokens": MAX_TOKENS, "seed": SEED}
        return {
            "generate": Signature(
                "`num` pieces of `num_bars` bars from a lone Bar token (cached Transformer-XL decoding)",
                common, outputs, generate,
                lambda rng: {"num": np.int32(2), "num_bars": np.int32(2), "temperature": np.float32(0.9),
                             "top_k": np.int32(8), "max_tokens": np.int32(48), "seed": SEED_VALUE}),
            "continue": Signature(
                "the prompt (PAD and EOS dropped) kept exactly, followed by `num_bars` new bars",
                {"prompt_tokens": Tensor(tf.int64, (None,), "prompt REMI ids (the converter's tokens of a MIDI "
                                                            "file); an empty prompt starts from a Bar token"),
                 **common}, outputs, continue_tokens,
                lambda rng: {"prompt_tokens": self._example_prompt(rng), "num": np.int32(2),
                             "num_bars": np.int32(1), "temperature": np.float32(1.0), "top_k": np.int32(0),
                             "max_tokens": np.int32(40), "seed": SEED_VALUE}),
        }

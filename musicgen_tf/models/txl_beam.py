"""Beam search for the REMI Transformer-XL, on the same per-layer key/value cache as its sampling loop.

Seed 003 plans beam search beside temperature + top-k.  keras_hub's `BeamSampler` wants a cache with the batch on
axis 0 and stops on end tokens only; our cache is [K slots, rows, H, d] per layer and generation also stops on a
bar count, so this is a small search of its own (graph code, one `tf.while_loop`):

- W beams are W cache rows.  The prompt is teacher-forced (all rows alike; only row 0 has score 0, the others
  start at -1e9 so the first free step expands row 0 alone).
- Each free step scores all W x V continuations by the beam's summed log-probability plus log softmax of the
  logits (PAD never; a finished beam continues only with PAD at no cost), keeps the best W (`tf.math.top_k`: ties go
  to the lower index, as `argmax`), and gathers the caches, tokens and bar counts of the chosen parents.
- The bar rule of sampling holds: a beam that already has `max_bars` bars cannot start another; its Bar candidate
  becomes EOS (log-prob max(EOS, Bar)), exactly what greedy decoding does when it picks a Bar there.  So one beam
  is greedy decoding (`--temperature 0`), and the score of any output is `sequence_log_prob`.
- No length normalisation: the search maximises the summed log-probability of the emitted tokens.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

NEG = -1e9
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _step_log_probs(model, logits, bars, done, max_bars):
    """float32 logits [W, V] -> log-probs [W, V] with PAD excluded, the bar rule, and PAD-only rows for finished
    beams."""
    vocab = tf.range(model.vocab_size)
    logits = tf.where(tf.equal(vocab, model.pad_id)[None], NEG, logits)
    logp = tf.nn.log_softmax(logits, axis=-1)
    at_limit = (bars >= max_bars)[:, None]
    merged_eos = tf.maximum(logp[:, model.eos_id], logp[:, model.bar_id])[:, None]
    logp = tf.where(at_limit & tf.equal(vocab, model.eos_id)[None], merged_eos, logp)
    logp = tf.where(at_limit & tf.equal(vocab, model.bar_id)[None], NEG, logp)
    finished = tf.where(tf.equal(vocab, model.pad_id), 0.0, NEG)[None]
    return tf.where(done[:, None], finished, logp)


def _search(model, prompt, beams, max_bars, max_tokens):
    """prompt int32 [P >= 1] -> (tokens int32 [W, T], lengths int32 [W], scores float32 [W]), best beam first."""
    prompt_len = tf.shape(prompt)[0]
    max_tokens = tf.maximum(max_tokens, prompt_len + 1)
    r_k, k_caches, v_caches = model._empty_cache(beams)
    tokens = tf.concat([tf.fill([beams, 1], prompt[0]), tf.zeros([beams, max_tokens - 1], tf.int32)], 1)
    bars = tf.fill([beams], tf.cast(tf.equal(prompt[0], model.bar_id), tf.int32))
    done = tf.zeros([beams], tf.bool)
    scores = tf.concat([[0.0], tf.fill([beams - 1], NEG)], 0)
    vocab = model.vocab_size

    def body(t, token, k_caches, v_caches, tokens, bars, done, scores):
        logits, k_caches, v_caches = model._cached_step(token, t, r_k, k_caches, v_caches)
        forced = t + 1 < prompt_len
        forced_row = tf.where(tf.equal(tf.range(vocab), prompt[tf.minimum(t + 1, prompt_len - 1)]), 0.0, NEG)
        logp = tf.where(forced, tf.broadcast_to(forced_row[None], [beams, vocab]),
                        _step_log_probs(model, logits, bars, done, max_bars))
        candidates = tf.reshape(scores[:, None] + logp, [-1])
        scores, flat = tf.math.top_k(candidates, k=beams)
        parent, nxt = flat // vocab, flat % vocab
        k_caches = [tf.gather(c, parent, axis=1) for c in k_caches]
        v_caches = [tf.gather(c, parent, axis=1) for c in v_caches]
        was_done = tf.gather(done, parent)
        tokens = tf.gather(tokens, parent)
        column = tf.one_hot(t + 1, max_tokens, on_value=True, off_value=False, dtype=tf.bool)[None]
        tokens = tf.where(column, nxt[:, None], tokens)
        bars = tf.gather(bars, parent) + tf.cast(tf.equal(nxt, model.bar_id) & ~was_done, tf.int32)
        done = was_done | tf.equal(nxt, model.eos_id)
        return t + 1, nxt, k_caches, v_caches, tokens, bars, done, scores

    def cond(t, token, k_caches, v_caches, tokens, bars, done, scores):
        return tf.logical_and(t + 1 < max_tokens, ~tf.reduce_all(done))

    t, _, _, _, tokens, _, done, scores = tf.while_loop(
        cond, body, (0, tf.fill([beams], prompt[0]), k_caches, v_caches, tokens, bars, done, scores))
    tokens = tokens[:, :t + 1]
    is_eos = tf.cast(tf.equal(tokens, model.eos_id), tf.int32)
    lengths = tf.where(done, tf.argmax(is_eos, axis=1, output_type=tf.int32) + 1, t + 1)
    return tokens, lengths, scores


def _compiled(model):
    if model not in _COMPILED:
        _COMPILED[model] = tf.function(
            lambda prompt, beams, max_bars, max_tokens: _search(model, prompt, beams, max_bars, max_tokens),
            reduce_retracing=True)
    return _COMPILED[model]


def beam_search(model, prompt, beams: int, max_bars: int, max_tokens: int):
    """-> (int64 [beams, longest] PAD after each end, float32 scores [beams]), best first.

    prompt: int ids [P >= 1] kept exactly; max_bars counts the prompt's bars; max_tokens counts the prompt."""
    if int(beams) < 1:
        raise ValueError(f"beam width must be >= 1, got {beams}")
    if not model.built:
        model.build()
    tokens, lengths, scores = _compiled(model)(
        tf.constant(np.asarray(prompt).reshape(-1), tf.int32), int(beams), tf.constant(int(max_bars), tf.int32),
        tf.constant(int(max_tokens), tf.int32))
    tokens, lengths = tokens.numpy(), lengths.numpy()
    out = np.where(np.arange(tokens.shape[1])[None] < lengths[:, None], tokens, model.pad_id)
    return out[:, :int(lengths.max())].astype(np.int64), scores.numpy()


def generate(model, num_bars: int, beams: int, max_tokens: int = 4096, num: int = 1) -> np.ndarray:
    """Task 1 with beam search: the `num` best of `beams` beams from a lone Bar, int64 [num, T]."""
    _check_num(num, beams)
    return beam_search(model, [model.bar_id], beams, num_bars, max_tokens)[0][:num]


def continue_tokens(model, prompt_ids, num_bars: int, beams: int, max_tokens: int = 4096, num: int = 1):
    """Task 2 with beam search: `prompt_ids` kept, `num_bars` more bars; the `num` best beams, int64 [num, T]."""
    _check_num(num, beams)
    prompt = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
    prompt = prompt[(prompt != model.pad_id) & (prompt != model.eos_id)]
    if prompt.size == 0:
        prompt = np.array([model.bar_id])
    total = int(np.sum(prompt == model.bar_id)) + int(num_bars)
    return beam_search(model, prompt, beams, total, max(int(max_tokens), prompt.size + 1))[0][:num]


def _check_num(num: int, beams: int) -> None:
    if num > beams:
        raise ValueError(f"beam search gives at most --beam pieces: asked for {num} with --beam {beams}")


def sequence_log_prob(model, tokens, prompt_len: int, max_bars: int) -> float:
    """Summed log-probability of `tokens` int [T] after its first `prompt_len` tokens, under the search's scoring
    (PAD excluded, the bar rule); stops at EOS/PAD.  Teacher-forced through the full-recompute path."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1)
    real = tokens[tokens != model.pad_id]
    end = np.flatnonzero(real == model.eos_id)
    real = real[: end[0] + 1] if len(end) else real
    logits = model.logits_full_recompute(real[:-1]).numpy()
    total, bars = 0.0, int(real[0] == model.bar_id)
    for t in range(len(real) - 1):
        nxt = int(real[t + 1])
        if t + 1 >= prompt_len:
            logp = _step_log_probs(model, tf.constant(logits[t:t + 1]), tf.constant([bars]),
                                   tf.constant([False]), max_bars).numpy()[0]
            total += float(logp[nxt])
        bars += int(nxt == model.bar_id)
    return total


__all__ = ["beam_search", "generate", "continue_tokens", "sequence_log_prob"]

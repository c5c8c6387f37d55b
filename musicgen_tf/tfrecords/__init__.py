"""Versioned Example schema, manifest, and the tf.data input pipeline."""

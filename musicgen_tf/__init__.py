"""musicgen_tf: music generative models on TensorFlow 2 / Keras 3, from raw corpora to TF Serving."""

__version__ = "0.1.0"

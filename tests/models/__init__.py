import numpy as np
import tensorflow as tf


def assert_same_values_and_gradients(reference, candidate, inputs, weights, rtol=1e-4, atol=1e-5):
    """Two zero-argument loss functions give the same loss and the same gradients with respect to the input
    tensors `inputs` (watched here) and the model variables `weights`."""
    results = []
    for loss_fn in (reference, candidate):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = loss_fn()
        results.append([loss] + tape.gradient(loss, list(inputs) + list(weights)))
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)

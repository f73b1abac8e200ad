"""DP-SGD's private gradient: per-example gradients, clipped, summed, noised.

For a loss that is a sum of per-example terms l(theta; x_i), the private
gradient of a (Poisson-sampled) batch is

    (sum_i w_i * clip_C(grad l(theta; x_i)) + N(0, (sigma * C)^2 I)) / B

where clip_C scales a vector to L2 norm at most C, w_i is 1 for drawn rows
and 0 for padding, and B is the expected batch size (dividing by the drawn
count would make the divisor depend on the data). Adding or removing one
example changes the sum by at most C, which is what the accountant assumes.

Per-example gradients are vectorized with pfor, either by
`tf.vectorized_map` over single examples (the default: an order of
magnitude faster here, bench/results/dp.json) or through the Jacobian of
the vector of per-example losses.

Example:

>>> import numpy as np, tensorflow as tf
>>> w = tf.Variable([1.0, 1.0])
>>> x = tf.constant([[3.0, 4.0], [0.3, 0.4]])  # gradient norms 5 and 0.5
>>> g, _ = private_gradient(lambda x: tf.linalg.matvec(x, w), [w], (x,),
...                         tf.ones([2]), clip=1.0, noise_multiplier=0.0,
...                         denominator=2, seed=tf.constant([0, 0]))
>>> [round(float(v), 3) for v in g[0]]  # (0.6 + 0.3, 0.8 + 0.4) / 2
[0.45, 0.6]
"""

from __future__ import annotations

import secrets

import tensorflow as tf

from tfsynth.errors import ConfigError

PER_EXAMPLE_METHODS = ("vectorized_map", "jacobian")
# Layers that mix the examples of a batch: with them, one example's
# gradient depends on the others and per-example clipping bounds nothing.
BATCH_MIXING = ("BatchNormalization", "MinibatchStdDev")


# The GAN discriminator losses as (real term per example, fake term batch mean):
# d_loss = mean(real term) + fake term (tfsynth.models.losses).
def _real_nonsaturating(logits):
    return tf.nn.softplus(-tf.cast(logits, tf.float32))


def _fake_nonsaturating(logits):
    return tf.reduce_mean(tf.nn.softplus(tf.cast(logits, tf.float32)))


def _real_hinge(logits):
    return tf.nn.relu(1.0 - tf.cast(logits, tf.float32))


def _fake_hinge(logits):
    return tf.reduce_mean(tf.nn.relu(1.0 + tf.cast(logits, tf.float32)))


D_LOSS_TERMS = {
    "dcgan": (_real_nonsaturating, _fake_nonsaturating),
    "hinge": (_real_hinge, _fake_hinge),
}


def per_example_gradients(per_example_loss, variables, inputs, method: str = "vectorized_map"):
    """([N, *v.shape] per variable, the losses (N,)) of `per_example_loss(*inputs) -> (N,)`."""
    if method == "jacobian":
        with tf.GradientTape() as tape:
            losses = per_example_loss(*inputs)
        grads = tape.jacobian(losses, variables, experimental_use_pfor=True)
    elif method == "vectorized_map":

        def one(args):
            with tf.GradientTape() as tape:
                loss = per_example_loss(*[a[None] for a in args])[0]
            return tape.gradient(loss, variables), loss

        grads, losses = tf.vectorized_map(one, tuple(inputs))
    else:
        raise ValueError(f"method: expected one of {PER_EXAMPLE_METHODS}, got {method!r}")
    n = tf.shape(losses)[0]
    grads = [
        tf.zeros(tf.concat([[n], tf.shape(v)], 0)) if g is None else tf.cast(g, tf.float32)
        for g, v in zip(grads, variables)
    ]
    return grads, losses


def private_gradient(
    per_example_loss, variables, inputs, weights, *, clip: float, noise_multiplier: float,
    denominator: float, seed, method: str = "vectorized_map",
):  # fmt: skip
    """The DP-SGD gradient (list, one per variable) and the per-example losses.

    Args:
        per_example_loss: `f(*inputs) -> (N,)`, one loss term per example;
            examples must not interact (no batch normalization).
        variables: what to differentiate.
        inputs: tuple of (N, ...) tensors (e.g. images, labels).
        weights: (N,) 1 for drawn examples, 0 for padding rows.
        clip: the L2 norm C each example's gradient (all variables together)
            is clipped to.
        noise_multiplier: sigma; the noise std is sigma * C.
        denominator: the expected batch size.
        seed: (2,) stateless seed of the noise; keep it secret.
        method: "vectorized_map" or "jacobian".
    """
    grads, losses = per_example_gradients(per_example_loss, variables, inputs, method)
    n = tf.shape(losses)[0]
    squares = [tf.reduce_sum(tf.square(tf.reshape(g, [n, -1])), axis=1) for g in grads]
    norms = tf.sqrt(tf.add_n(squares))
    scale = tf.cast(weights, tf.float32) * tf.minimum(1.0, clip / tf.maximum(norms, 1e-12))
    out = []
    for i, g in enumerate(grads):
        total = tf.tensordot(scale, g, axes=1)
        if noise_multiplier > 0:
            key = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), i)
            total += (
                noise_multiplier
                * clip
                * tf.random.stateless_normal(tf.shape(total), key, dtype=total.dtype)
            )
        out.append(total / denominator)
    return out, losses


# -- what the GAN and VAE private steps share --------------------------------
def refuse_batch_mixing(network, what: str) -> None:
    """Raises ConfigError when `network` has a layer that mixes the examples of a batch."""
    mixing = [
        layer.name for layer in network._flatten_layers() if type(layer).__name__ in BATCH_MIXING
    ]
    if mixing:
        raise ConfigError(f"dp: the {what}'s {mixing[0]} mixes the examples of a batch")


def attach(trainer, plan) -> None:
    """Sets `trainer.dp`, drops its class counts and draws the secret keys.

    The class counts are a count of training examples per class, released
    without noise: a DP trainer keeps none (so no `generate --labels match`).
    The keys of the noise and of the Poisson draws come from the OS and are
    never saved: noise that the run's seed could regenerate voids the guarantee.
    """
    trainer.dp = plan
    trainer.class_counts = None
    trainer._dp_key, trainer._dp_sampling_key = secrets.randbits(31), secrets.randbits(31)


def step_inputs(trainer, data):
    """(images, labels, weights, seed) of one private step.

    Refuses several replicas (per-example clipping and the one noise draw
    assume one device); `weights` (N,) are a `poisson_batches` batch's (0
    marks padding), all 1 without weights; `seed` is the step's draw of the
    trainer's seed generator.
    """
    from tfsynth.models import _trainer

    if tf.distribute.get_strategy().num_replicas_in_sync > 1:
        raise ConfigError("dp: DP training runs on one device (--strategy none)")
    images, labels = trainer._unpack(data)
    if isinstance(data, (tuple, list)) and len(data) > 2:
        weights = tf.cast(data[2], tf.float32)
    else:
        weights = tf.ones([tf.shape(images)[0]], tf.float32)
    return images, labels, weights, _trainer.replica_seed(trainer.seed_generator.next())


def planned_gradient(trainer, optimizer, per_example_loss, variables, inputs, weights, method):
    """`private_gradient` under `trainer.dp`, its noise keyed by the secret key and `optimizer`'s step."""
    plan = trainer.dp
    key = tf.stack(
        [tf.constant(trainer._dp_key, tf.int64), tf.cast(optimizer.iterations, tf.int64)]
    )
    return private_gradient(
        per_example_loss, variables, inputs, weights, clip=plan.clip,
        noise_multiplier=plan.noise_multiplier, denominator=float(plan.batch_size), seed=key,
        method=method,
    )  # fmt: skip

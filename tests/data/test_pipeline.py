import numpy as np
import tensorflow as tf

from tfsynth.data.pipeline import to_uint8, to_unit_range


def test_range_round_trip():
    x = tf.constant(np.arange(256, dtype=np.uint8))
    y = to_unit_range(x)
    assert float(tf.reduce_min(y)) == -1.0 and float(tf.reduce_max(y)) == 1.0
    np.testing.assert_array_equal(to_uint8(y).numpy(), x.numpy())


def test_batches_shapes_and_drop_remainder(tiny_dataset):
    ds = tiny_dataset.to_tf_dataset(5, drop_remainder=True)
    assert [int(x.shape[0]) for x, _ in ds] == [5, 5]
    ds = tiny_dataset.to_tf_dataset(5)
    assert [int(x.shape[0]) for x, _ in ds] == [5, 5, 2]


def test_seeded_shuffle_is_reproducible_and_reshuffles(tiny_dataset):
    def order(ds):
        return np.concatenate([y.numpy() for _, y in ds])

    a = tiny_dataset.to_tf_dataset(12, seed=1)
    b = tiny_dataset.to_tf_dataset(12, seed=1)
    first_a = order(a)
    np.testing.assert_array_equal(first_a, order(b))
    x_a = np.concatenate([x.numpy() for x, _ in tiny_dataset.to_tf_dataset(12, seed=1)])
    x_c = np.concatenate([x.numpy() for x, _ in tiny_dataset.to_tf_dataset(12, seed=2)])
    assert not np.array_equal(x_a, x_c)


def test_unnormalized_and_map_batch(tiny_dataset):
    ds = tiny_dataset.to_tf_dataset(4, shuffle=False, normalize=False)
    x, _ = next(iter(ds))
    assert x.dtype == tf.uint8
    ds = tiny_dataset.to_tf_dataset(4, shuffle=False, map_batch=lambda x, y: (x * 0.0, y + 1))
    x, y = next(iter(ds))
    assert float(tf.reduce_max(tf.abs(x))) == 0.0 and y.numpy().tolist() == [1, 2, 3, 1]

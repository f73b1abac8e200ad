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


def _ids(ds):
    """Each batch as the example indices it holds (the images carry their index)."""
    return [((x.numpy()[:, 0, 0, 0] + 1.0) * 127.5).round().astype(int).tolist() for x, _ in ds]


def test_epoch_batches_resume_anywhere_and_epochs_depend_on_seed_and_index():
    from tfsynth.data import ImageDataset

    n = 10  # batch 4: 2 full batches per pass; 5 steps per epoch need 2 passes
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 2, 2, 1))
    ds = ImageDataset(images, np.arange(n) % 2)
    full = _ids(ds.epoch_batches(4, 5, seed=3, stop_step=15))
    assert len(full) == 15 and all(len(b) == 4 for b in full)
    for start in (1, 5, 7, 14):  # mid-epoch, an epoch boundary, ... the last step
        assert _ids(ds.epoch_batches(4, 5, seed=3, start_step=start, stop_step=15)) == full[start:]
    # Each pass is a permutation: 20 consecutive ids of an epoch hold every example twice.
    first_epoch = sum(full[:5], [])
    assert sorted(first_epoch) == sorted(list(range(n)) * 2)
    assert full[:5] != full[5:10]  # epochs differ
    assert _ids(ds.epoch_batches(4, 5, seed=4, stop_step=5)) != full[:5]  # and seeds
    x, y = next(iter(ds.epoch_batches(4, 5, seed=3, stop_step=1)))
    assert x.dtype == tf.float32 and y.dtype == tf.int64
    np.testing.assert_array_equal(y.numpy(), np.array(full[0]) % 2)

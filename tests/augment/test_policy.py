import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import make_arrays
from tfsynth.augment import (
    OPS,
    PRESETS,
    AugmentationPolicy,
    build_policy,
    draws,
    parse_policy,
    resampling,
)
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError

# A typical non-zero strength for every op.
STRENGTH = {
    "rotate": 20,
    "translate": 0.2,
    "zoom": 0.2,
    "flip": "horizontal",
    "elastic": 0.05,
    "contrast": 0.5,
    "brightness": 0.3,
    "erase": 1.0,
    "randaugment": 0.5,
    "mixup": 0.4,
    "cutmix": 1.0,
}


def test_every_op_has_a_test_strength():
    assert set(STRENGTH) == set(OPS)


def _batch(c=3):
    images, labels = make_arrays(4, 16, 16, c, num_classes=3)
    return images, labels


def _run(policy, images, labels=None, training=True, seed=(0, 1)):
    if policy.label_mixing:
        out = policy({"images": images, "labels": labels}, training=training, seed=seed)
        return out["images"].numpy(), out["labels"]
    return policy(images, training=training, seed=seed).numpy(), None


def test_parse_presets_overrides_and_mappings():
    assert parse_policy("none")[0] == []
    ops, fill, spec = parse_policy("digits,rotate:20")
    assert dict(ops)["rotate"] == 20.0 and fill == "constant"
    assert spec.startswith("fill:constant,") and "rotate:20" in spec
    assert "flip" not in dict(parse_policy("digits")[0])  # digits never flip
    natural = dict(parse_policy("natural")[0])
    assert natural["flip"] == "horizontal" and "contrast" in natural
    assert build_policy({"rotate": 15, "erase": 0.25}).spec == "rotate:15,erase:0.25"
    assert set(PRESETS) == {"none", "digits", "natural"}
    # the canonical spec parses back to itself
    assert parse_policy(spec)[2] == spec


@pytest.mark.parametrize(
    "spec, needle",
    [
        ("rotat:10", "unknown op 'rotat'"),
        ("rotate:abc", "rotate needs a number"),
        ("rotate:400", "rotate must be in [0, 180]"),
        ("translate:-0.1", "translate must be in [0, 1]"),
        ("zoom:nan", "zoom must be in"),
        ("rotate", "op 'rotate' needs a value"),
        ("digits,,zoom:0.1", "empty item"),
        ("fill:mirror", "fill must be one of"),
        ("flip:sideways", "flip must be one of"),
        ("blur", "unknown op or preset 'blur'"),
    ],
)
def test_bad_specs_give_one_line_errors(spec, needle):
    with pytest.raises(ConfigError) as err:
        build_policy(spec)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and repr(spec) in msg


def test_bad_seed_is_rejected():
    with pytest.raises(ConfigError, match="seed"):
        build_policy("digits", seed=-1)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_identity_at_inference_and_strength_zero(op):
    images, labels = _batch()
    policy = build_policy(f"{op}:{STRENGTH[op]}", num_classes=3)
    out, _ = _run(policy, images, labels, training=False)
    np.testing.assert_array_equal(out, images)
    off = build_policy(f"{op}:0", num_classes=3)
    np.testing.assert_array_equal(off(images, training=True).numpy(), images)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_keeps_range_dtype_shape_and_is_seeded(op):
    images, labels = _batch()
    policy = build_policy(f"{op}:{STRENGTH[op]}", num_classes=3)
    a, soft = _run(policy, images, labels)
    b, _ = _run(policy, images, labels)
    c, _ = _run(policy, images, labels, seed=(7, 7))
    assert a.dtype == np.uint8 and a.shape == images.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # float input in [-1, 1] stays float in [-1, 1]
    xf = images.astype(np.float32) / 127.5 - 1.0
    f, _ = _run(policy, xf, labels)
    assert f.dtype == np.float32 and f.shape == images.shape
    assert f.min() >= -1.0 and f.max() <= 1.0
    if policy.label_mixing:
        soft = soft.numpy()
        assert soft.shape == (4, 3)
        np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-5)


def test_float_and_uint8_inputs_agree_for_geometric_ops():
    images, _ = _batch(1)
    policy = build_policy("digits")
    u = policy(images, seed=[0, 1]).numpy().astype(np.float32)
    f = policy(images.astype(np.float32) / 127.5 - 1.0, seed=[0, 1]).numpy()
    np.testing.assert_allclose((f + 1.0) * 127.5, u, atol=0.51)


def test_mixing_needs_labels_and_classes():
    images, labels = _batch()
    with pytest.raises(ConfigError, match="mixes labels"):
        build_policy("mixup:0.2", num_classes=3)(images)
    with pytest.raises(ConfigError, match="num_classes"):
        build_policy("mixup:0.2")({"images": images, "labels": labels})


def test_map_batch_in_tf_data_is_deterministic_and_keeps_types():
    images, labels = make_arrays(32, 16, 16, 1, num_classes=3)
    ds = ImageDataset(images, labels)
    policy = build_policy("digits,erase:0.5", seed=3)

    def epoch():
        pipe = ds.to_tf_dataset(batch_size=4, seed=0, map_batch=policy.map_batch)
        return np.concatenate([x.numpy() for x, _ in pipe])

    a, b = epoch(), epoch()
    assert a.dtype == np.float32 and a.shape == (32, 16, 16, 1)
    assert a.min() >= -1 and a.max() <= 1
    plain = np.concatenate(
        [x.numpy() for x, _ in ds.to_tf_dataset(batch_size=4, seed=0, shuffle=True)]
    )
    assert not np.array_equal(a, plain)
    # parallel map, same shuffle seed -> the same augmented epoch
    np.testing.assert_array_equal(a, b)


def test_map_batch_with_mixup_gives_soft_labels():
    images, labels = make_arrays(8, 16, 16, 1, num_classes=3)
    policy = build_policy("mixup:0.4", num_classes=3)
    pipe = ImageDataset(images, labels).to_tf_dataset(batch_size=4, map_batch=policy.map_batch)
    x, y = next(iter(pipe))
    assert y.shape == (4, 3) and y.dtype == tf.float32


def test_policy_inside_a_keras_model_trains_and_is_identity_at_predict(tmp_path):
    images, labels = make_arrays(8, 16, 16, 1, num_classes=3)
    x = images.astype(np.float32) / 127.5 - 1.0
    policy = build_policy("digits", seed=0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            policy,
            keras.layers.Flatten(),
            keras.layers.Dense(3, kernel_initializer="ones"),
        ]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, labels, batch_size=4, epochs=1, verbose=0)
    head = keras.Sequential(model.layers[1:])
    np.testing.assert_allclose(model.predict(x, verbose=0), head.predict(x, verbose=0), rtol=1e-5)
    assert not np.allclose(model(x, training=True).numpy(), head(x).numpy())
    # the .keras round trip rebuilds the same policy
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[0], AugmentationPolicy)
    assert loaded.layers[0].spec == policy.spec
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_augment_normalize_fuses_the_scaling_into_the_warp():
    images, labels = make_arrays(4, 16, 16, 1, num_classes=3)
    for spec in ("digits", "rotate:10,contrast:0.3"):  # last stage a warp / not a warp
        policy = build_policy(spec, seed=0)
        fn = policy.compiled()
        as_uint8, _ = fn(images, labels, [0, 7], False)
        unit, _ = fn(images, labels, [0, 7], True)
        assert unit.dtype == tf.float32 and as_uint8.dtype == tf.uint8
        assert float(tf.reduce_min(unit)) >= -1.0 and float(tf.reduce_max(unit)) <= 1.0
        # the same augmentation, only not rounded to 8 bits
        np.testing.assert_allclose(unit.numpy(), as_uint8.numpy() / 127.5 - 1.0, atol=0.5 / 127.5)
    with pytest.raises(ConfigError, match="needs uint8"):
        policy.augment(images.astype(np.float32), labels, [0, 1], normalize=True)
    x, _ = build_policy("none").augment(images, labels, [0, 1], normalize=True)
    np.testing.assert_allclose(x.numpy(), images / 127.5 - 1.0, atol=1e-6)


def test_map_batch_seeds_from_the_fingerprint_or_the_given_seed():
    images, labels = make_arrays(8, 16, 16, 1, num_classes=3)
    policy = build_policy("digits", seed=5)
    fused, _ = policy.map_batch(tf.constant(images), labels)
    seed = [5, int(draws.batch_fingerprint(images))]
    general, _ = policy.compiled()(images, labels, seed, False)
    np.testing.assert_array_equal(fused.numpy(), general.numpy())
    # with an explicit batch seed (what to_tf_dataset passes)
    seeded, _ = policy.map_batch(tf.constant(images), labels, seed=tf.constant([5, 9], tf.int64))
    general, _ = policy.compiled()(images, labels, [5, 9], False)
    np.testing.assert_array_equal(seeded.numpy(), general.numpy())
    assert not np.array_equal(seeded.numpy(), fused.numpy())


def test_to_tf_dataset_augment_seeds_every_epoch_anew_and_reproducibly():
    images, labels = make_arrays(16, 16, 16, 1, num_classes=3)
    ds = ImageDataset(images, labels)

    def two_epochs(seed):
        # no shuffle: the batches are the same, only the augmentation differs
        pipe = ds.to_tf_dataset(batch_size=4, seed=seed, shuffle=False, augment="digits")
        return [np.concatenate([x.numpy() for x, _ in pipe]) for _ in range(2)]

    a1, a2 = two_epochs(0)
    b1, b2 = two_epochs(0)
    np.testing.assert_array_equal(a1, b1)  # same seed, same epochs
    np.testing.assert_array_equal(a2, b2)
    assert not np.array_equal(a1, a2)  # a new epoch, new augmentations
    assert not np.array_equal(a1, two_epochs(1)[0])  # another seed


@pytest.mark.parametrize("spec", ["digits", "digits,erase:0.5"])
def test_to_tf_dataset_augment_is_deterministic_and_normalized(spec):
    images, labels = make_arrays(32, 16, 16, 1, num_classes=3)
    ds = ImageDataset(images, labels)

    def epoch(**kw):
        pipe = ds.to_tf_dataset(batch_size=4, seed=0, augment=spec, **kw)
        return np.concatenate([x.numpy() for x, _ in pipe])

    a, b = epoch(), epoch()
    assert a.dtype == np.float32 and a.shape == (32, 16, 16, 1)
    assert a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    plain = np.concatenate([x.numpy() for x, _ in ds.to_tf_dataset(batch_size=4, seed=0)])
    assert not np.array_equal(a, plain)
    raw = epoch(normalize=False)
    assert raw.dtype == np.uint8 and raw.shape == a.shape
    with pytest.raises(ConfigError, match="unknown op"):
        ds.to_tf_dataset(batch_size=4, augment="digits,bogus:1")


@pytest.mark.parametrize(
    ("spec", "normalize", "sampler"),
    [
        ("digits", True, "sample_quads"),  # uint8 batches, constant fill: packed quads
        ("digits", False, "sample_quads"),
        ("fill:reflect,rotate:10", True, "sample_images"),  # other fills: four reads
    ],
)
def test_to_tf_dataset_augment_traces_the_expected_sampler(monkeypatch, spec, normalize, sampler):
    # The two samplers agree to float rounding (tests/augment/test_resampling.py), so
    # only the traced calls show which one the pipeline runs.
    calls = []
    for name in ("sample_quads", "sample_images"):
        original = getattr(resampling, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(resampling, name, spy)
    images, labels = make_arrays(8, 16, 16, 1, num_classes=3)
    policy = build_policy(spec, seed=0)  # fresh: nothing traced yet
    pipe = ImageDataset(images, labels).to_tf_dataset(4, augment=policy, normalize=normalize)
    next(iter(pipe))
    assert set(calls) == {sampler}

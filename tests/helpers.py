"""Shared contract checks for tfsynth trainers, in the manner of KerasHub's `TestCase`.

`trainer_state` and `max_abs_diff` compare two trainers variable by
variable (weights, seed generator states, optimizer slots and counters);
`run_trainer_contract` is the check every model name goes through.
"""

import numpy as np

OPTIMIZER_ATTRS = ("optimizer", "d_optimizer", "g_optimizer")
GAN_NAMES = ("dcgan", "wgan-gp", "hinge", "cgan")  # the names `build_model` makes a `GAN`


def trainer_state(model) -> list[np.ndarray]:
    """Every variable of a trainer, in a fixed order: the model's, then each optimizer's.

    Compared by position, not by path: two loaded copies of a model get
    different auto-numbered optimizer names.
    """
    arrays = [np.asarray(v.numpy()) for v in model.variables]
    for attr in OPTIMIZER_ATTRS:
        opt = getattr(model, attr, None)
        if opt is not None:
            arrays += [np.asarray(v.numpy()) for v in opt.variables]
    return arrays


def max_abs_diff(a, b) -> float:
    """The largest |a - b| over two trainers' `trainer_state` (shapes must match)."""
    sa, sb = trainer_state(a), trainer_state(b)
    assert [x.shape for x in sa] == [x.shape for x in sb], "different variables"
    return max(
        float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))
        for x, y in zip(sa, sb)
    )


def tiny_batch(n=8, h=16, num_classes=3, seed=0):
    """`n` images in [-1, 1] (float32, NHWC) and labels 0..num_classes-1."""
    from tests.conftest import make_arrays

    images, labels = make_arrays(n=n, h=h, w=h, num_classes=max(1, num_classes), seed=seed)
    return images.astype("float32") / 127.5 - 1.0, labels


def build_tiny(name, image_shape=(16, 16, 1), num_classes=3, **kwargs):
    """Model `name` at test size (width 4, or 8 for the ddpm's grouped norms), compiled, no XLA."""
    from tfsynth.models import build_model

    width = 8 if name == "ddpm" else 4
    m = build_model(name, image_shape, num_classes, latent_dim=8, width=width, seed=1, **kwargs)
    m.compile(jit_compile=False)
    return m


def run_trainer_contract(model, kwargs, save_dir, *, num_classes=3):
    """What every tfsynth trainer promises (KerasHub's serialization and saving tests).

    1. Two train steps (8 images, batch 4) log finite values of its metrics
       and count 2 steps; a GAN's critic takes `n_critic` steps per step.
    2. Config round trip: `from_config(get_config())` gives the same config,
       and the config survives JSON.
    3. `.keras` round trip (`load_generator`): the same type and config and
       every variable equal (weights, EMA, seed generator states, optimizer
       slots and step counters), so the same samples (float32 in [-1, 1])
       and `model_id`.
    4. It keeps training: two more steps on the original and on the copy
       end equal to the last bit, at step 4, with new sampling weights.

    Args:
        model: a model name (built by `build_tiny`) or a builder `f(**kwargs)`
            returning a compiled trainer.
        kwargs: the model's options.
        save_dir: an empty directory for model.keras.
        num_classes: classes in the training batch.

    Returns:
        The trainer after step 2, and the history of its first fit.
    """
    import json

    from tfsynth.models import GAN, load_generator, model_id

    m = (
        build_tiny(model, num_classes=num_classes, **kwargs)
        if isinstance(model, str)
        else model(**kwargs)
    )
    x, y = tiny_batch(num_classes=num_classes)
    fit = {"batch_size": 4, "epochs": 1, "verbose": 0, "shuffle": False}
    hist = m.fit(x, y, **fit).history
    assert set(hist) == {t.name for t in m.metrics}, hist
    assert all(np.isfinite(v).all() for v in hist.values()), hist
    assert int(m.train_steps.numpy()) == 2
    if isinstance(m, GAN):
        assert int(m.d_optimizer.iterations.numpy()) == 2 * m.n_critic

    config = json.dumps(m.get_config(), sort_keys=True)  # JSON-ready, as in model.keras
    assert (
        json.dumps(type(m).from_config(json.loads(config)).get_config(), sort_keys=True) == config
    )

    m.save(f"{save_dir}/model.keras")
    r = load_generator(save_dir)
    assert type(r) is type(m) and json.dumps(r.get_config(), sort_keys=True) == config
    assert max_abs_diff(r, m) == 0.0 and int(r.train_steps.numpy()) == 2
    assert model_id(r) == model_id(m)
    noise = np.random.default_rng(0).normal(size=(2, m.latent_dim)).astype("float32")
    labels = np.array([0, 1]) if m.num_classes else None
    out = m.generate(noise, labels).numpy()
    assert out.shape == (2, *m.image_shape) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    np.testing.assert_array_equal(r.generate(noise, labels), out)

    before = model_id(m)
    for trainer in (m, r):
        trainer.fit(x, y, **fit)
    assert int(r.train_steps.numpy()) == 4 and max_abs_diff(r, m) == 0.0
    assert model_id(r) != before
    return m, hist

"""Augmentation policies: parse a spec, build Keras layers, apply them to batches.

A policy is written as a comma-separated list of `op:value` items, e.g.
`rotate:10,translate:0.1,zoom:0.1`, or named by a preset (`digits`,
`natural`, `none`); presets and items can be mixed, later items override
earlier ones (`digits,rotate:20`). A value of 0 switches an op off, so
every op is the identity at strength 0. See `OPS` for the list.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import tensorflow as tf

from tfsynth import _compat
from tfsynth.augment import draws, resampling, warp
from tfsynth.augment.layers import ElasticDistortion, RandomErasing, SeededRandAugment
from tfsynth.data.pipeline import to_unit_range
from tfsynth.errors import ConfigError

# Every op works on float32 images in [0, 255] inside the policy.
VALUE_RANGE = (0, 255)
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """One policy op: its value range, kind and how to build its Keras layer."""

    name: str
    kind: str  # "geometric" (fused into one warp), "photometric" or "mixing"
    bounds: tuple[float, float]
    meaning: str
    build: Callable[[Any, str, int], keras.layers.Layer]


def _l(name):
    return getattr(keras.layers, name)


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec(
            "rotate",
            "geometric",
            (0, 180),
            "max rotation in degrees",
            lambda v, fill, s: _l("RandomRotation")(v / 360.0, fill_mode=fill, seed=s),
        ),
        OpSpec(
            "translate",
            "geometric",
            (0, 1),
            "max shift as a fraction of height/width",
            lambda v, fill, s: _l("RandomTranslation")(v, v, fill_mode=fill, seed=s),
        ),
        OpSpec(
            "zoom",
            "geometric",
            (0, 0.9),
            "max zoom in or out as a fraction",
            lambda v, fill, s: _l("RandomZoom")((-v, v), fill_mode=fill, seed=s),
        ),
        OpSpec(
            "flip",
            "geometric",
            (0, 0),
            "horizontal, vertical or horizontal_and_vertical",
            lambda v, fill, s: _l("RandomFlip")(v, seed=s),
        ),
        OpSpec(
            "elastic",
            "geometric",
            (0, 0.5),
            "RMS elastic displacement as a fraction of the image side",
            lambda v, fill, s: ElasticDistortion(alpha=v, fill_mode=fill, seed=s),
        ),
        OpSpec(
            "contrast",
            "photometric",
            (0, 1),
            "max contrast change as a fraction",
            lambda v, fill, s: _l("RandomContrast")(v, value_range=VALUE_RANGE, seed=s),
        ),
        OpSpec(
            "brightness",
            "photometric",
            (0, 1),
            "max brightness shift as a fraction of the value range",
            lambda v, fill, s: _l("RandomBrightness")(v, value_range=VALUE_RANGE, seed=s),
        ),
        OpSpec(
            "erase",
            "photometric",
            (0, 1),
            "probability of erasing a random rectangle",
            lambda v, fill, s: RandomErasing(probability=v, seed=s),
        ),
        OpSpec(
            "randaugment",
            "photometric",
            (0, 1),
            "RandAugment magnitude (2 ops per image)",
            lambda v, fill, s: SeededRandAugment(
                value_range=VALUE_RANGE, num_ops=2, factor=v, seed=s
            ),
        ),
        OpSpec(
            "mixup",
            "mixing",
            (0, 10),
            "MixUp Beta(alpha, alpha) concentration",
            lambda v, fill, s: _l("MixUp")(alpha=v, seed=s),
        ),
        OpSpec(
            "cutmix",
            "mixing",
            (0, 1),
            "CutMix Beta concentration upper bound",
            lambda v, fill, s: _l("CutMix")(factor=v, seed=s),
        ),
    ]
}

PRESETS: dict[str, str] = {
    "none": "",
    # Digits must keep their identity: no flips (a mirrored 2 is not a 2),
    # small rotations and shifts, the classic elastic distortion, and a
    # black ("constant") border as MNIST's background is black.
    "digits": "fill:constant,rotate:10,translate:0.1,zoom:0.1,elastic:0.02",
    # Natural images: left-right flips and colour changes are label-safe.
    "natural": "fill:reflect,flip:horizontal,rotate:10,translate:0.1,zoom:0.1,contrast:0.2,brightness:0.2",
}


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_policy(spec: str | Mapping[str, Any]) -> tuple[list[tuple[str, Any]], str, str]:
    """Parses a policy spec into ([(op, value), ...], fill_mode, canonical spec).

    Raises:
        ConfigError: one line naming the spec, the item and what was expected.

    >>> parse_policy("rotate:10,translate:0.1")
    ([('rotate', 10.0), ('translate', 0.1)], 'reflect', 'rotate:10,translate:0.1')
    >>> parse_policy("digits,rotate:20")[0][0]
    ('rotate', 20.0)
    """
    if isinstance(spec, Mapping):
        spec = ",".join(f"{k}:{v}" for k, v in spec.items())
    if not isinstance(spec, str):
        raise ConfigError(
            f"policy: expected a spec string, a preset or a mapping, got {type(spec).__name__}"
        )
    where = f"policy {spec!r}"
    items: dict[str, Any] = {}
    fill = None
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            if spec.strip():
                raise ConfigError(f"{where}: empty item; write op:value items separated by commas")
            continue
        if ":" not in item:
            if item in PRESETS:
                sub, sub_fill, _ = parse_policy(PRESETS[item])
                items.update(sub)
                fill = sub_fill if PRESETS[item].startswith("fill:") else fill
                continue
            if item in OPS:
                raise ConfigError(
                    f"{where}: op {item!r} needs a value, e.g. {item}:{_example(item)}"
                )
            raise ConfigError(
                f"{where}: unknown op or preset {item!r}; expected a preset ({', '.join(PRESETS)}) "
                f"or one of {', '.join(OPS)}, fill"
            )
        name, _, text = (s.strip() for s in item.partition(":"))
        if name == "fill":
            if text not in resampling.FILL_MODES:
                raise ConfigError(
                    f"{where}: fill must be one of {', '.join(resampling.FILL_MODES)}, got {text!r}"
                )
            fill = text
            continue
        op = OPS.get(name)
        if op is None:
            raise ConfigError(
                f"{where}: unknown op {name!r}; expected one of {', '.join(OPS)}, fill"
            )
        items[name] = _parse_value(where, op, text)  # a later value wins, in place
    ops = list(items.items())
    canonical = ",".join(([f"fill:{fill}"] if fill else []) + [f"{k}:{_fmt(v)}" for k, v in ops])
    return ops, fill or "reflect", canonical


def _example(name: str) -> str:
    return "horizontal" if name == "flip" else _fmt(OPS[name].bounds[1] / 10 or 0.1)


def _parse_value(where: str, op: OpSpec, text: str) -> Any:
    if op.name == "flip":
        if text in FLIP_MODES or text == "0":
            return text
        raise ConfigError(
            f"{where}: flip must be one of {', '.join(FLIP_MODES)} or 0 (off), got {text!r}"
        )
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            f"{where}: {op.name} needs a number ({op.meaning}), got {text!r}"
        ) from None
    lo, hi = op.bounds
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ConfigError(
            f"{where}: {op.name} must be in [{lo:g}, {hi:g}] ({op.meaning}), got {text}"
        )
    return value


def _is_off(value: Any) -> bool:
    return value == 0 or value == "0"


@keras.saving.register_keras_serializable(package="tfsynth")
class AugmentationPolicy(keras.layers.Layer):
    """A data augmentation policy as one Keras layer.

    The policy holds one Keras preprocessing layer per op (RandomRotation,
    RandomTranslation, RandomZoom, RandomFlip, RandomContrast,
    RandomBrightness, RandAugment, MixUp, CutMix, and tfsynth's
    ElasticDistortion and RandomErasing). The layers draw the random
    parameters; consecutive geometric ops are then applied as ONE bilinear
    warp (their matrices and the elastic field composed), which is faster
    and blurs less than warping once per op.

    Inputs are uint8 images in [0, 255] (the output is uint8, rounded) or
    float images in [-1, 1] (the output is float in [-1, 1]), shape
    (B, H, W, C). To use label-mixing ops (mixup, cutmix), pass a dict
    `{"images": ..., "labels": ...}`: int labels become one-hot soft labels
    (this needs `num_classes`), and the output labels are float32 (B, K).

    With `training=False` the layer is the identity. Randomness comes from
    a `seed` tensor when one is passed (stateless and reproducible, what
    `to_tf_dataset(augment=...)` and `augment_batches` do), otherwise from the layer's own
    `SeedGenerator` (for use inside a model).

    Use it three ways:
    - in a model: `keras.Sequential([policy, ...])` (augments during `fit`);
    - during training: `ds.to_tf_dataset(64, augment=policy)` (uint8 batches in,
      [-1, 1] floats out, two XLA computations per batch for geometric policies);
    - materialized: `tfsynth.augment.augment_to_dir(ds, policy, n, out=...)`.

    Args:
        spec: a policy spec or preset, see `parse_policy`.
        seed: seed of the layer's own generator and of `map_batch`.
        num_classes: number of classes, needed to one-hot int labels for
            label-mixing ops.

    Example:

    >>> import numpy as np
    >>> policy = AugmentationPolicy("rotate:10,translate:0.1", seed=0)
    >>> x = np.zeros((4, 28, 28, 1), np.uint8)
    >>> policy(x).dtype.name, policy.label_mixing
    ('uint8', False)
    >>> y = policy(x, seed=[0, 1]).numpy()
    >>> bool((y == policy(x, seed=[0, 1]).numpy()).all())
    True
    """

    def __init__(self, spec="none", seed=0, num_classes=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.ops, self.fill_mode, self.spec = parse_policy(spec)
        self.seed = int(seed)
        self.num_classes = None if num_classes is None else int(num_classes)
        active = [(n, v) for n, v in self.ops if not _is_off(v)]
        self.op_names = [n for n, _ in active]
        self.op_layers = [
            draws.with_philox(OPS[n].build(v, self.fill_mode, self.seed + i))
            for i, (n, v) in enumerate(active)
        ]
        self.label_mixing = any(OPS[n].kind == "mixing" for n in self.op_names)
        # Consecutive geometric ops form one stage (one warp); others one each.
        self._stages: list[list[int]] = []
        for i, n in enumerate(self.op_names):
            geometric = OPS[n].kind == "geometric"
            if (
                geometric
                and self._stages
                and OPS[self.op_names[self._stages[-1][0]]].kind == "geometric"
            ):
                self._stages[-1].append(i)
            else:
                self._stages.append([i])
        self.generator = keras.random.SeedGenerator(self.seed)
        # Inputs keep their dtype (Keras would autocast floats) and may be NumPy.
        _compat.keep_input_dtype(self)
        self._compiled = None
        self._warp_fns = {}

    def __repr__(self) -> str:
        return f"AugmentationPolicy({self.spec!r}, seed={self.seed})"

    # -- the computation --------------------------------------------------------
    def augment(self, images, labels=None, seed=None, normalize=False):
        """Augments a batch with a stateless seed (int [2]); returns (images, labels).

        Pure function of (images, labels, seed): the same inputs give the same
        output, whatever runs in parallel. `labels` may be None unless the
        policy mixes labels. With `normalize=True` the input must be uint8 and
        the output is float32 in [-1, 1], what tfsynth models consume; the
        scaling then runs inside the last warp instead of as a separate pass
        (and the output is not rounded to 8 bits).
        """
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4:
            raise ConfigError(
                f"{self.name}: expected a batch of images (B, H, W, C), got shape {images.shape}"
            )
        in_dtype = images.dtype
        if normalize and in_dtype != tf.uint8:
            raise ConfigError(
                f"{self.name}: normalize=True needs uint8 images, got {in_dtype.name}"
            )
        if not self.op_layers:
            return (to_unit_range(images) if normalize else images), labels
        if self.label_mixing:
            if labels is None:
                raise ConfigError(
                    f"policy {self.spec!r} mixes labels (mixup/cutmix); pass labels too "
                    "(map_batch, augment_batches, or a dict with 'images' and 'labels')"
                )
            labels = self._soft_labels(labels)
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        # Geometric stages are linear in intensity, so they run on the input
        # as it is (uint8, or float in [-1, 1] with the fill value mapped);
        # only the other ops need float [0, 255]. For an all-geometric policy
        # such as `digits` the whole batch is then one warp (`_warp_fn`).
        unit = in_dtype != tf.uint8
        x = images
        for k, stage in enumerate(self._stages):
            kind = OPS[self.op_names[stage[0]]].kind
            if kind == "geometric":  # the stage seed is folded in inside the warp's XLA call
                if k == len(self._stages) - 1:  # the last stage writes the output
                    output = "unit" if normalize else in_dtype.name
                    return self._warp_fn(k)(x, seed, unit, output), labels
                x = self._warp_fn(k)(x, seed, unit, "float32")
                continue
            draw = draws.StatelessSeed(draws.fold_seed(seed, k))
            if unit:
                x = (tf.cast(x, tf.float32) + 1.0) * 127.5
                unit = False
            x = tf.cast(x, tf.float32)
            layer = self.op_layers[stage[0]]
            t = layer.get_random_transformation(x, training=True, seed=draw)
            x = tf.cast(layer.transform_images(x, t, training=True), tf.float32)
            if kind == "mixing":
                labels = tf.cast(layer.transform_labels(labels, t, training=True), tf.float32)
        if normalize:
            return to_unit_range(tf.clip_by_value(x, 0.0, 255.0)), labels
        if in_dtype == tf.uint8:
            return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8), labels
        if not unit:
            x = x / 127.5 - 1.0
        return tf.cast(tf.clip_by_value(x, -1.0, 1.0), in_dtype), labels

    def _warp_fn(self, k):
        # A geometric stage is two XLA computations. The first draws the
        # layers' random parameters and computes the source grid (composed
        # matrix, elastic field) - about 100 small TF ops otherwise - and,
        # for uint8 images with a constant fill, packs each pixel's 2x2
        # neighbourhood into one int32 (`resampling.pack_quads`). The second
        # resamples and writes the output. Two computations, because XLA
        # would fuse the packing into the sampler's gather and redo it per
        # pixel; materialized, a bilinear read is one gather instead of four
        # (`bench/augment_kernel.py`).
        fn = self._warp_fns.get(k)
        if fn is None:
            layers = [self.op_layers[i] for i in self._stages[k]]

            def grid(x, seed, quads):
                draw = draws.StatelessSeed(draws.fold_seed(seed, k))
                src_y, src_x = self._grid(x, layers, draw)
                return src_y, src_x, (resampling.pack_quads(x) if quads else None)

            def sample(source, src_y, src_x, quads, unit, output):
                # output: a dtype name, or "unit" for float32 in [-1, 1] from uint8
                out = resampling.resample(
                    source,
                    src_y,
                    src_x,
                    fill_mode=self.fill_mode,
                    fill_value=-1.0 if unit else 0.0,  # black in either range
                    packed=quads,
                )
                if output == "unit":
                    return to_unit_range(out)
                return resampling.cast_output(out, output)

            grid_xla = tf.function(grid, jit_compile=True)
            sample_xla = tf.function(sample, jit_compile=True)

            def fn(x, seed, unit, output):
                quads = resampling.uses_quads(x.dtype, self.fill_mode, "bilinear")
                src_y, src_x, packed = grid_xla(x, seed, quads)
                return sample_xla(packed if quads else x, src_y, src_x, quads, unit, output)

            self._warp_fns[k] = fn
        return fn

    def _grid(self, x, layers, draw):
        # Source coordinates of the stage's composed warp.
        h, w = x.shape[1], x.shape[2]
        matrix = warp.identity_matrices(tf.shape(x)[0])
        elastic = []
        for layer in layers:
            t = layer.get_random_transformation(x, training=True, seed=draw)
            if isinstance(layer, ElasticDistortion):
                elastic.append(t)
                continue
            # Applying A then B reads the input at M_A @ M_B @ p.
            matrix = tf.matmul(matrix, warp.geometric_matrix(layer, t, h, w))
        # Every geometric layer here is affine (see geometric_matrix).
        return warp.warp_grid(matrix, tuple(elastic), h, w, affine=True)

    def _soft_labels(self, labels):
        labels = tf.convert_to_tensor(labels)
        if labels.shape.rank == 2:
            return tf.cast(labels, tf.float32)
        if self.num_classes is None:
            raise ConfigError(
                f"policy {self.spec!r} mixes labels; build it with num_classes to one-hot int labels"
            )
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=tf.float32)

    def compiled(self):
        """`augment` as a `tf.function` (traced once per input signature)."""
        if self._compiled is None:
            self._compiled = tf.function(self.augment)
        return self._compiled

    def map_batch(self, images, labels, normalize=False, seed=None):
        """(images, labels) -> augmented (images, labels), for `tf.data.Dataset.map`.

        `seed` is the batch's stateless seed (int [2]).
        `ImageDataset.to_tf_dataset(..., augment=policy)` passes one from a
        seeded `tf.data.Dataset.random` stream zipped with the batches (the
        TensorFlow data augmentation guide's pattern), so the same shuffle
        seed gives the same augmented epochs and every epoch gets new ones.
        Without `seed` (e.g. `to_tf_dataset(..., map_batch=policy.map_batch)`,
        which has no seed stream), it is derived from the policy seed and a
        fingerprint of the batch's pixels (`draws.batch_fingerprint`), not
        from a counter, so the result does not depend on which parallel call
        of `map` runs first. `normalize=True` takes uint8 batches and returns
        float32 in [-1, 1] (see `augment`).
        """
        if seed is None:
            seed = tf.stack([tf.constant(self.seed, tf.int64), _fingerprint_xla(images)])
        if tf.inside_function():  # e.g. a tf.data map: inline, no nested function call
            return self.augment(images, labels, seed, normalize)
        return self.compiled()(images, labels, seed, normalize)

    # -- Keras layer interface --------------------------------------------------
    def build(self, input_shape):
        shape = input_shape["images"] if isinstance(input_shape, dict) else input_shape
        for layer in self.op_layers:
            if not layer.built:
                layer.build(shape)
        self.built = True

    def call(self, inputs, training=True, seed=None):
        inputs = tf.nest.map_structure(tf.convert_to_tensor, inputs)
        images = inputs["images"] if isinstance(inputs, dict) else inputs
        labels = inputs.get("labels") if isinstance(inputs, dict) else None
        if not training or not self.op_layers:
            return inputs
        seed = self.generator.next() if seed is None else seed
        out_images, out_labels = self.augment(images, labels, seed)
        if isinstance(inputs, dict):
            return {**inputs, "images": out_images, "labels": out_labels}
        return out_images

    def compute_output_spec(self, inputs, training=True, seed=None):
        if isinstance(inputs, dict):
            out = dict(inputs)
            if self.label_mixing and "labels" in inputs:
                k = self.num_classes or inputs["labels"].shape[-1]
                out["labels"] = keras.KerasTensor((inputs["labels"].shape[0], k), "float32")
            return out
        return keras.KerasTensor(inputs.shape, inputs.dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "spec": self.spec,
            "seed": self.seed,
            "num_classes": self.num_classes,
        }


_fingerprint_xla = tf.function(draws.batch_fingerprint, jit_compile=True)


def build_policy(
    spec_or_preset: str | Mapping[str, Any] | AugmentationPolicy = "none",
    *,
    seed: int = 0,
    num_classes: int | None = None,
) -> AugmentationPolicy:
    """Builds an `AugmentationPolicy` layer from a spec, preset or mapping.

    An existing policy is returned as is (or rebuilt with `num_classes` when
    it has none and one is given).

    Raises:
        ConfigError: unknown op or preset, bad value (one line).

    >>> build_policy("digits").spec
    'fill:constant,rotate:10,translate:0.1,zoom:0.1,elastic:0.02'
    >>> build_policy({"rotate": 15, "erase": 0.25}).spec
    'rotate:15,erase:0.25'
    """
    if isinstance(spec_or_preset, AugmentationPolicy):
        if num_classes is not None and spec_or_preset.num_classes is None:
            return AugmentationPolicy(
                spec_or_preset.spec, seed=spec_or_preset.seed, num_classes=num_classes
            )
        return spec_or_preset
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    return AugmentationPolicy(spec_or_preset, seed=seed, num_classes=num_classes)


def describe_ops() -> Sequence[str]:
    """One line per op for help texts: `name: meaning [lo, hi]`."""
    return [
        f"{o.name}: {o.meaning}"
        + ("" if o.name == "flip" else f" [{o.bounds[0]:g}, {o.bounds[1]:g}]")
        for o in OPS.values()
    ]

"""Training and DDIM sampling throughput of tfsynth's ddpm against the keras.io DDIM example.

The reference re-implements keras-team/keras-io examples/generative/ddim.py
(continuous-time DDIM, A. Beres): its residual U-Net (BatchNorm without
centre/scale, the noise variance's sinusoidal embedding concatenated at the
input, average pooling, bilinear upsampling, `block_depth` 2) and its
`train_step` (a Normalization layer, MAE noise loss plus an image-loss
metric, AdamW 1e-3 / 1e-4, EMA 0.999 as an assign loop). The example runs at
64x64x3 with widths [32, 64, 96, 128]; here the shape is mnist's 28x28x1,
which halves only twice, so its widths are [w, 2w, 3w] with w the tfsynth
width (full-resolution channels equal).

Contenders, each at the same image shape and batch, interleaved A, B, C, A,
B, C, ... after a warm-up; each round's ratio to the reference is taken and
the median reported:

- ``reference``: the keras.io network and step (unconditional);
- ``tfsynth``: tfsynth's `Diffusion` trainer and U-Net as `tfsynth run`
  trains it (10 classes with label dropout 0.1, GroupNorm, the time/label
  embedding added in every block, attention at 7x7, EMA 0.999);
- ``tfsynth_step_on_reference_net``: tfsynth's trainer around the
  reference network (unconditional): the same network and per-image work
  (both steps do one forward/backward and an EMA update), so its ratio
  measures the step alone.

The two networks do different work per image, so the ratio of tfsynth to
the reference in images/s is reported next to their FLOP/s ratio.
Sampling is images x DDIM steps per second: tfsynth's compiled while loop
(guidance 1: one network pass per step; guidance > 1: two, reported apart)
against the reference's `reverse_diffusion` loop in one `tf.function`.
FLOPs are an analytic count (2 per multiply-add of every Conv2D, Dense and
attention matmul; training = 3x forward), not tf.profiler; their share of a
float32 matmul peak timed in the same process is the "MFU".

    python bench/ddpm_throughput.py [--quick] [--width 32] [--batch 64]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from bench._env import machine_info  # noqa: E402
from tfsynth.models.diffusion import THETA_MAX, THETA_MIN, Diffusion  # noqa: E402
from tfsynth.models.unet import build_unet  # noqa: E402

SHAPE = (28, 28, 1)
CLASSES = 10
# keras.io ddim.py hyperparameters
EMBEDDING_DIMS = 32
EMBEDDING_MAX_FREQUENCY = 1000.0
MIN_SIGNAL_RATE, MAX_SIGNAL_RATE = 0.02, 0.95
BLOCK_DEPTH = 2
EMA = 0.999


# -- the keras.io network, with its Lambda embedding as a layer (so it clones) --


@keras.saving.register_keras_serializable(package="bench")
class RefSinusoidalEmbedding(layers.Layer):
    def call(self, x):
        freqs = tf.exp(
            tf.linspace(tf.math.log(1.0), tf.math.log(EMBEDDING_MAX_FREQUENCY), EMBEDDING_DIMS // 2)
        )
        angular_speeds = 2.0 * math.pi * freqs
        return tf.concat([tf.sin(angular_speeds * x), tf.cos(angular_speeds * x)], axis=3)


def _residual_block(x, width):
    residual = x if x.shape[3] == width else layers.Conv2D(width, kernel_size=1)(x)
    x = layers.BatchNormalization(center=False, scale=False)(x)
    x = layers.Conv2D(width, 3, padding="same", activation=keras.activations.swish)(x)
    x = layers.Conv2D(width, 3, padding="same")(x)
    return layers.Add()([x, residual])


def reference_network(widths, image_shape=SHAPE) -> keras.Model:
    """keras.io `get_network(image_size, widths, block_depth)` for (H, W, C) images."""
    noisy_images = keras.Input(shape=image_shape)
    noise_variances = keras.Input(shape=(1, 1, 1))
    e = RefSinusoidalEmbedding()(noise_variances)
    e = layers.UpSampling2D(size=image_shape[:2], interpolation="nearest")(e)
    x = layers.Conv2D(widths[0], kernel_size=1)(noisy_images)
    x = layers.Concatenate()([x, e])
    skips = []
    for width in widths[:-1]:
        for _ in range(BLOCK_DEPTH):
            x = _residual_block(x, width)
            skips.append(x)
        x = layers.AveragePooling2D(pool_size=2)(x)
    for _ in range(BLOCK_DEPTH):
        x = _residual_block(x, widths[-1])
    for width in reversed(widths[:-1]):
        x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
        for _ in range(BLOCK_DEPTH):
            x = layers.Concatenate()([x, skips.pop()])
            x = _residual_block(x, width)
    x = layers.Conv2D(image_shape[-1], kernel_size=1, kernel_initializer="zeros")(x)
    return keras.Model([noisy_images, noise_variances], x, name="residual_unet")


def _schedule(diffusion_times):
    start, end = tf.acos(MAX_SIGNAL_RATE), tf.acos(MIN_SIGNAL_RATE)
    angles = start + diffusion_times * (end - start)
    return tf.sin(angles), tf.cos(angles)  # noise_rates, signal_rates


class ReferenceDDIM(keras.Model):
    """keras.io `DiffusionModel`: its train_step and reverse_diffusion (KID left out)."""

    def __init__(self, network, batch_size):
        super().__init__()
        self.normalizer = layers.Normalization()
        self.network = network
        self.ema_network = keras.models.clone_model(network)
        self.batch_size = batch_size
        self.noise_loss_tracker = keras.metrics.Mean(name="n_loss")
        self.image_loss_tracker = keras.metrics.Mean(name="i_loss")

    @property
    def metrics(self):
        return [self.noise_loss_tracker, self.image_loss_tracker]

    def denoise(self, noisy_images, noise_rates, signal_rates, training):
        network = self.network if training else self.ema_network
        pred_noises = network([noisy_images, noise_rates**2], training=training)
        return pred_noises, (noisy_images - noise_rates * pred_noises) / signal_rates

    def train_step(self, images):
        if isinstance(images, tuple):
            images = images[0]
        images = self.normalizer(images, training=True)
        noises = tf.random.normal(shape=(self.batch_size, *SHAPE))
        diffusion_times = tf.random.uniform(shape=(self.batch_size, 1, 1, 1))
        noise_rates, signal_rates = _schedule(diffusion_times)
        noisy_images = signal_rates * images + noise_rates * noises
        with tf.GradientTape() as tape:
            pred_noises, pred_images = self.denoise(
                noisy_images, noise_rates, signal_rates, training=True
            )
            noise_loss = keras.losses.mean_absolute_error(noises, pred_noises)
            image_loss = keras.losses.mean_absolute_error(images, pred_images)
        gradients = tape.gradient(noise_loss, self.network.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.network.trainable_weights))
        self.noise_loss_tracker.update_state(noise_loss)
        self.image_loss_tracker.update_state(image_loss)
        for weight, ema_weight in zip(self.network.weights, self.ema_network.weights):
            ema_weight.assign(EMA * ema_weight + (1 - EMA) * weight)
        return {m.name: m.result() for m in self.metrics}

    def reverse_diffusion(self, initial_noise, diffusion_steps: int):
        num_images = tf.shape(initial_noise)[0]
        step_size = 1.0 / diffusion_steps
        next_noisy_images = initial_noise
        for step in range(diffusion_steps):
            noisy_images = next_noisy_images
            diffusion_times = tf.ones((num_images, 1, 1, 1)) - step * step_size
            noise_rates, signal_rates = _schedule(diffusion_times)
            pred_noises, pred_images = self.denoise(
                noisy_images, noise_rates, signal_rates, training=False
            )
            next_noise_rates, next_signal_rates = _schedule(diffusion_times - step_size)
            next_noisy_images = next_signal_rates * pred_images + next_noise_rates * pred_noises
        return pred_images


@keras.saving.register_keras_serializable(package="bench")
class NoiseVariance(layers.Layer):
    """tfsynth's time t in [0, 1] -> its cosine schedule's noise variance, as (N, 1, 1, 1)."""

    def call(self, t):
        theta = THETA_MIN + tf.cast(t, tf.float32) * (THETA_MAX - THETA_MIN)
        return tf.reshape(tf.square(tf.sin(theta)), (-1, 1, 1, 1))


def reference_net_for_tfsynth(widths) -> keras.Model:
    """The reference network behind tfsynth's [images, time] interface."""
    net = reference_network(widths)
    images, time = keras.Input(SHAPE, name="images"), keras.Input((), name="time")
    return keras.Model([images, time], net([images, NoiseVariance()(time)]))


# -- FLOPs --------------------------------------------------------------------------


def forward_flops(model: keras.Model) -> float:
    """Analytic forward FLOPs per image: 2 per multiply-add of Conv2D, Dense, attention."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += forward_flops(layer)
        elif isinstance(layer, layers.Conv2D):
            h, w, cout = layer.output.shape[1:]
            kh, kw = layer.kernel_size
            total += 2.0 * h * w * kh * kw * layer.input.shape[-1] * cout
        elif isinstance(layer, layers.Dense):
            total += 2.0 * layer.input.shape[-1] * layer.units
        elif isinstance(layer, layers.MultiHeadAttention):
            t, c = layer._inbound_nodes[0].input_tensors[0].shape[1:]  # (tokens, channels)
            heads, d = layer.num_heads, layer.key_dim
            total += 2.0 * t * c * heads * d * 3  # Q, K, V projections
            total += 2.0 * t * t * heads * d * 2  # QK^T and AV
            total += 2.0 * t * heads * d * c  # output projection
    return total


def matmul_peak(n=2048, reps=10, trials=5) -> float:
    """Float32 matmul FLOP/s, best of `trials` (as bench/train_throughput.py)."""
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n)) / n**0.5

    @tf.function
    def run(a, b):
        c = a
        for _ in range(reps):  # a dependent chain, so nothing is merged
            c = tf.matmul(c, b)
        return tf.reduce_sum(c)

    run(a, b).numpy()
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        run(a, b).numpy()
        best = max(best, 2.0 * n**3 * reps / (time.perf_counter() - t))
    return best


# -- contenders ---------------------------------------------------------------------


def make_contenders(width: int, batch: int, x01: np.ndarray) -> dict:
    widths = [width, 2 * width, 3 * width]
    ref = ReferenceDDIM(reference_network(widths), batch)
    ref.normalizer.adapt(x01[:2048])
    ref.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4))
    ours = Diffusion(build_unet(SHAPE, CLASSES, width), num_classes=CLASSES, seed=0)
    ours.compile(jit_compile=False)
    same = Diffusion(reference_net_for_tfsynth(widths), num_classes=0, seed=0)
    same.compile(jit_compile=False)
    return {"reference": ref, "tfsynth": ours, "tfsynth_step_on_reference_net": same}


def train_rate(model, ds, steps: int, batch: int) -> float:
    t = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - t)


def sampler(name: str, model, n: int, steps: int):
    """A no-argument callable running one batch of `steps` DDIM steps."""
    noise = tf.random.stateless_normal((n, *SHAPE), seed=[0, 1])
    if name == "reference":
        fn = tf.function(lambda x: model.reverse_diffusion(x, steps))
        return lambda: fn(noise).numpy()
    labels = np.arange(n) % CLASSES if model.num_classes else None
    flat = tf.reshape(noise, (n, -1))
    if name == "tfsynth_guided":
        return lambda: model.generate(flat, labels, steps=steps, guidance=2.0).numpy()
    return lambda: model.generate(flat, labels, steps=steps, guidance=1.0).numpy()


def sample_rate(fn, n: int, steps: int) -> float:
    t = time.perf_counter()
    fn()
    return n * steps / (time.perf_counter() - t)


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Each callable once (warm-up), then `rounds` rounds of all in turn."""
    for fn in fns.values():
        fn()
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            samples[k].append(fn())
    return samples


def ratios(samples: dict[str, list[float]], base: str) -> dict[str, float]:
    return {
        k: round(statistics.median(a / b for a, b in zip(v, samples[base])), 3)
        for k, v in samples.items()
    }


def _dataset(x01: np.ndarray, labels: np.ndarray, batch: int):
    ds = tf.data.Dataset.from_tensor_slices((x01 * 2.0 - 1.0, labels))
    return ds.shuffle(1024, seed=0).batch(batch, drop_remainder=True).cache().repeat().prefetch(2)


def _measure(args, x01, labels) -> dict:
    """Training and sampling rates of every contender, interleaved; FLOPs; matmul peak."""
    models = make_contenders(args.width, args.batch, x01)
    flops = {k: forward_flops(m.network) for k, m in models.items()}  # before any timing
    ds = _dataset(x01, labels, args.batch)
    ref_ds = tf.data.Dataset.from_tensor_slices(x01).batch(args.batch, drop_remainder=True)
    ref_ds = ref_ds.cache().repeat().prefetch(2)  # keras.io trains on [0, 1] images
    train = interleaved(
        {
            k: (lambda m=m, d=(ref_ds if k == "reference" else ds): train_rate(
                m, d, args.train_steps, args.batch))
            for k, m in models.items()
        },
        args.rounds,
    )  # fmt: skip
    n, s = args.sample_batch, args.sample_steps
    fns = {k: sampler(k, m, n, s) for k, m in models.items()}
    fns["tfsynth_guided"] = sampler("tfsynth_guided", models["tfsynth"], n, s)
    sample = interleaved(
        {k: (lambda f=f: sample_rate(f, n, s)) for k, f in fns.items()}, args.rounds
    )
    peak = max(matmul_peak(), matmul_peak())  # best of two, the load changes
    return {"train": train, "sample": sample, "flops": flops, "peak": peak,
            "params": {k: m.network.count_params() for k, m in models.items()}}  # fmt: skip


def _result(args, info, m) -> dict:
    train, sample, flops, peak = m["train"], m["sample"], m["flops"], m["peak"]
    med_t = {k: statistics.median(v) for k, v in train.items()}
    med_s = {k: statistics.median(v) for k, v in sample.items()}
    step_flops = {**flops, "tfsynth_guided": 2.0 * flops["tfsynth"]}  # cond + uncond passes
    train_flops = {k: 3.0 * f for k, f in flops.items()}  # forward + backward (2x)
    flop_rate_ratio = (med_t["tfsynth"] * train_flops["tfsynth"]) / (
        med_t["reference"] * train_flops["reference"]
    )
    return {
        "benchmark": "ddpm_throughput",
        **info,
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "quick": args.quick,
        "image_shape": list(SHAPE),
        "width": args.width,
        "reference_widths": [args.width, 2 * args.width, 3 * args.width],
        "batch_size": args.batch,
        "rounds": args.rounds,
        "train_steps_per_round": args.train_steps,
        "sample_batch": args.sample_batch,
        "sample_steps": args.sample_steps,
        "params": m["params"],
        "train_images_per_second": {k: round(v, 1) for k, v in med_t.items()},
        "train_images_per_second_rounds": {k: [round(x, 1) for x in v] for k, v in train.items()},
        "train_ratio_to_reference": ratios(train, "reference"),
        "train_flop_rate_ratio_tfsynth_to_reference": round(flop_rate_ratio, 3),
        "sample_image_steps_per_second": {k: round(v, 1) for k, v in med_s.items()},
        "sample_ratio_to_reference": ratios(sample, "reference"),
        "sample_rounds": {k: [round(x, 1) for x in v] for k, v in sample.items()},
        "flops_method": "analytic: 2 per multiply-add of Conv2D, Dense and attention matmuls; "
        "training 3x forward; norms, activations and the EMA not counted",
        "forward_gflops_per_image": {k: round(f / 1e9, 4) for k, f in flops.items()},
        "train_gflops_per_image": {k: round(f / 1e9, 4) for k, f in train_flops.items()},
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "mfu_train": {k: round(med_t[k] * train_flops[k] / peak, 4) for k in med_t},
        "mfu_sample": {k: round(med_s[k] * step_flops[k] / peak, 4) for k in med_s},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _print(r: dict) -> None:
    print(f"{'training':<32} {'img/s':>8} {'ratio':>7} {'GFLOP/img':>10} {'MFU':>7}")
    for k, v in r["train_images_per_second"].items():
        print(
            f"{k:<32} {v:>8.1f} {r['train_ratio_to_reference'][k]:>7.3f} "
            f"{r['train_gflops_per_image'][k]:>10.3f} {r['mfu_train'][k]:>7.3f}"
        )
    print(f"{'sampling (image-steps/s)':<32} {'rate':>8} {'ratio':>7} {'':>10} {'MFU':>7}")
    for k, v in r["sample_image_steps_per_second"].items():
        print(
            f"{k:<32} {v:>8.1f} {r['sample_ratio_to_reference'][k]:>7.3f} {'':>10} "
            f"{r['mfu_sample'][k]:>7.3f}"
        )
    print(
        f"matmul peak {r['matmul_peak_gflops']:.1f} GFLOP/s; tfsynth/reference FLOP/s in "
        f"training {r['train_flop_rate_ratio_tfsynth_to_reference']:.3f}"
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a few minutes: fewer, shorter rounds")
    p.add_argument("--width", type=int, default=32, help="full-resolution channels of both nets")
    p.add_argument("--batch", type=int, default=64, help="the keras.io example's batch")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "ddpm_throughput.json"))
    args = p.parse_args(argv)
    args.rounds, args.train_steps = (3, 6) if args.quick else (5, 15)
    args.sample_batch, args.sample_steps = (128, 3) if args.quick else (256, 5)
    info = machine_info()  # the commit and load when the run starts

    from tfsynth.data import load_dataset

    images, labels = load_dataset("mnist-10k[:4096]").numpy()
    x01 = images.astype("float32") / 255.0
    r = _result(args, info, _measure(args, x01, labels))
    _print(r)
    from tfsynth.io import atomic_write_json

    atomic_write_json(args.out, r)
    print(f"wrote {args.out}")
    return r


if __name__ == "__main__":
    main()

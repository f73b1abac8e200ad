"""Where the `digits` policy kernel spends its time, per 256x28x28 batch.

Direct calls of XLA-compiled functions on the same uint8 batch, CPU time
per call (process time, so helper threads count), interleaved rounds,
medians:

- call: a trivial compiled function (uint8 -> [-1, 1]); the fixed cost of
  one compiled call from Python, included in every row below;
- policy: the whole policy call with a given batch seed
  (`map_batch(..., normalize=True, seed=...)`, what `to_tf_dataset`
  runs): two XLA computations, draws + source grid + quad packing, then
  the sampler and the scaling to [-1, 1];
- grid: the draws plus the spline source grid only;
- pack: `resampling.pack_quads` only;
- sampler_quads: `resampling.sample_quads` on a fixed source grid, from quads
  packed beforehand (what the policy's second computation does);
- sampler_gathers: `resampling.sample_images` on the same grid (four byte
  gathers per pixel, the general sampler);
- fingerprint: `draws.batch_fingerprint` only (`map_batch` without a seed).

It also counts the graph nodes of the policy function, which set the
per-iterator setup cost of a tf.data pipeline (function instantiation).
Run it pinned to one core to see single-threaded costs:

    taskset -c 0 python bench/augment_kernel.py [--quick]

writes bench/results/augment_kernel.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _env import machine_info  # noqa: E402

BATCH = 256


def cpu_ms_per_call(fn, calls: int) -> float:
    t = time.process_time()
    for _ in range(calls):
        out = fn()
    out.numpy()  # the last call has finished
    return (time.process_time() - t) / calls * 1e3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 20 calls")
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "augment_kernel.json")
    )
    args = parser.parse_args(argv)
    rounds, calls = (3, 20) if args.quick else (9, 40)
    machine = machine_info()  # the load before the measurement

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tensorflow as tf

    import tfsynth
    from tfsynth.augment import build_policy, draws, resampling, warp
    from tfsynth.data.pipeline import to_unit_range
    from tfsynth.io import atomic_write_json

    images, _ = tfsynth.load_dataset("mnist-10k").numpy()
    x = tf.constant(images[:BATCH])
    h, w = x.shape[1], x.shape[2]
    policy = build_policy("digits", seed=0)
    compiled = policy.compiled()
    seed = tf.constant([0, 1], tf.int64)

    def grid_only(images):
        # The policy's own first-computation grid (draws, matrix, spline), less the packing.
        src_y, src_x = policy._grid(images, policy.op_layers, draws.StatelessSeed(seed))
        return src_y + src_x

    fixed_y, fixed_x = warp.source_grid(warp.identity_matrices(BATCH) * 1.05, h, w)
    quads = resampling.pack_quads(x)

    def sampler_quads(quads):
        return to_unit_range(resampling.sample_quads(quads, fixed_y, fixed_x))

    def sampler_gathers(images):
        out = resampling.sample_images(tf.cast(images, tf.float32), fixed_y, fixed_x)
        return to_unit_range(out)

    jit = {
        "call": tf.function(to_unit_range, jit_compile=True),
        "grid": tf.function(grid_only, jit_compile=True),
        "pack": tf.function(resampling.pack_quads, jit_compile=True),
        "sampler_quads": tf.function(sampler_quads, jit_compile=True),
        "sampler_gathers": tf.function(sampler_gathers, jit_compile=True),
        "fingerprint": tf.function(draws.batch_fingerprint, jit_compile=True),
    }
    contenders = {
        "call": lambda: jit["call"](x),
        "policy": lambda: compiled(x, None, seed, True)[0],
        "grid": lambda: jit["grid"](x),
        "pack": lambda: jit["pack"](x),
        "sampler_quads": lambda: jit["sampler_quads"](quads),
        "sampler_gathers": lambda: jit["sampler_gathers"](x),
        "fingerprint": lambda: jit["fingerprint"](x),
    }
    for fn in contenders.values():  # warm-up: traces and XLA compiles
        cpu_ms_per_call(fn, 3)
    runs = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            runs[name].append(cpu_ms_per_call(fn, calls))
    ms = {k: statistics.median(v) for k, v in runs.items()}
    # Net of the fixed call cost, per round, then the median.
    net = {
        k: statistics.median(a - c for a, c in zip(runs[k], runs["call"]))
        for k in contenders
        if k != "call"
    }
    graph_def = compiled.get_concrete_function(x, None, seed, True).graph.as_graph_def()
    nodes = len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)
    result = {
        "benchmark": "augment_kernel",
        "machine": machine,
        "policy": policy.spec,
        "batch": [BATCH, h, w, 1],
        "rounds": rounds,
        "calls_per_round": calls,
        "cpu_ms_per_call": ms,
        "cpu_ms_net_of_call": net,
        "runs": runs,
        "policy_graph_nodes": nodes,
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "tensorflow": tf.__version__,
    }
    print(f"{'part':<16}{'CPU ms/call':>12}{'net of call':>13}")
    for name in contenders:
        extra = f"{net[name]:>13.3f}" if name in net else ""
        print(f"{name:<16}{ms[name]:>12.3f}{extra}")
    print(f"policy function graph nodes: {nodes} (cores available: {result['cpu_affinity']})")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""D' on Beam: the same bytes as the local builder, also after a failed attempt."""

import json

import pytest

from tests.beam.conftest import digests
from tests.conftest import listing
from tfsynth.beam import BeamConfig, fuse_on_beam
from tfsynth.beam.shards import FAIL_ONCE, WriteShard
from tfsynth.fusion import build_fused

THREADS = BeamConfig("--direct_num_workers=2 --direct_running_mode=multi_threading")
PROCESSES = BeamConfig("--direct_num_workers=2 --direct_running_mode=multi_processing")


def _config(inputs, kind):
    if kind == "on the fly":  # policy and generator on the fly, D_pseudo from a directory
        mix = dict(aug_policy="digits", gen=str(inputs / "run"), pseudo=str(inputs / "pseudo"))
        counts = "real=8,aug=8,gen=8,pseudo=6"
    else:  # every synthetic source a dataset directory
        mix = dict(aug=str(inputs / "aug"), gen=str(inputs / "gen"))
        counts = "real=8,aug=10,gen=10"
    return dict(real=f"npz:{inputs / 'real.npz'}", counts=counts, num_shards=2, batch_size=4, **mix)


@pytest.fixture(scope="module")
def local(inputs, tmp_path_factory):
    """The local builder's D' per kind of source: {kind: digests}."""
    root = tmp_path_factory.mktemp("local")
    out = {}
    for i, kind in enumerate(("on the fly", "directories")):
        build_fused(out=root / str(i) / "d", **_config(inputs, kind))
        out[kind] = digests(root / str(i) / "d")
    return out


@pytest.mark.parametrize("kind", ["on the fly", "directories"])
def test_two_threads_write_the_local_bytes(inputs, local, tmp_path, kind):
    m = fuse_on_beam(out=tmp_path / "d", beam=THREADS, **_config(inputs, kind))
    assert digests(tmp_path / "d") == local[kind]
    assert m["num_examples"] == 30 - 2 * (kind == "directories") and len(m["shards"]) == 2
    assert listing(tmp_path) == ["d", *(f"d/{f}" for f in sorted(local[kind])), "d/summary.json"]


@pytest.mark.slow
def test_two_worker_processes_write_the_local_bytes(inputs, local, tmp_path):
    fuse_on_beam(out=tmp_path / "d", beam=PROCESSES, **_config(inputs, "on the fly"))
    assert digests(tmp_path / "d") == local["on the fly"]


def test_a_failed_attempt_then_a_rerun_write_the_local_bytes(inputs, local, tmp_path, monkeypatch):
    """The DirectRunner does not retry an element: the job fails, and its rerun resumes."""
    monkeypatch.setenv(FAIL_ONCE, f"1:{tmp_path / 'markers'}")
    cfg = _config(inputs, "directories")
    with pytest.raises(Exception, match="injected failure of shard 1"):
        fuse_on_beam(out=tmp_path / "out" / "d", beam=THREADS, **cfg)
    staged = listing(tmp_path / "out")
    assert not (tmp_path / "out" / "d").exists()
    assert ".d.partial/.data-00001-of-00002.tfrecord.tmp-killed" in staged  # as a kill leaves it
    fuse_on_beam(out=tmp_path / "out" / "d", beam=THREADS, **cfg)
    assert digests(tmp_path / "out" / "d") == local["directories"]
    files = sorted(local["directories"])
    assert listing(tmp_path / "out") == ["d", *(f"d/{f}" for f in files), "d/summary.json"]


def test_a_retried_element_rewrites_its_shard_whole(inputs, local, tmp_path, monkeypatch):
    """What Dataflow does with a failed element: the same worker's DoFn runs it again."""
    from tfsynth.beam.fuse import FuseShards
    from tfsynth.fusion import builder

    cfg = builder._as_config(_config(inputs, "on the fly"), {})
    layout = builder.Layout(cfg)
    staging, plan = builder._start_build(layout, tmp_path / "d", overwrite=False)
    fn = WriteShard(FuseShards(cfg, staging, layout.num_shards))
    fn.setup()
    monkeypatch.setenv(FAIL_ONCE, f"0:{tmp_path / 'markers'}")
    with pytest.raises(RuntimeError, match="injected failure of shard 0"):
        list(fn.process(0))
    counts = [list(fn.process(k)) for k in (0, 1, 0)]  # the retry, the next, a duplicate
    assert counts == [[15], [15], [15]]
    builder._merge(tmp_path / "d", staging, plan, cfg, False, 0.0)
    assert digests(tmp_path / "d") == local["on the fly"]
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["num_examples"] == 30

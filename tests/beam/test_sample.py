"""D_gen on Beam: the same bytes as `generate`, curated or not, also after a failed attempt."""

import pytest

from tests.beam.conftest import digests
from tests.conftest import listing
from tfsynth.beam import BeamConfig, generate_on_beam
from tfsynth.beam.shards import FAIL_ONCE
from tfsynth.generation import generate

THREADS = BeamConfig("--direct_num_workers=2 --direct_running_mode=multi_threading")


@pytest.mark.parametrize("curate", [False, True])
def test_two_threads_write_the_local_bytes(inputs, tmp_path, curate):
    kw = dict(seed=3, batch_size=4, examples_per_shard=5, curate=curate, min_confidence=0.6)
    local = generate(inputs / "run", 12, out=tmp_path / "local" / "g", **kw)
    beam = generate_on_beam(inputs / "run", 12, out=tmp_path / "beam" / "g", beam=THREADS, **kw)
    assert digests(tmp_path / "beam" / "g") == digests(tmp_path / "local" / "g")
    assert len(beam["shards"]) == 3 and beam == local
    if curate:  # the workers' rejection counts add up to the local ones
        assert beam["metadata"]["generator"]["curation"]["num_rejected"] > 0
    assert listing(tmp_path / "beam") == listing(tmp_path / "local")


def test_a_failed_attempt_leaves_nothing_and_a_rerun_writes_the_local_bytes(
    inputs, tmp_path, monkeypatch
):
    kw = dict(seed=1, batch_size=4, examples_per_shard=4)
    generate(inputs / "run", 8, out=tmp_path / "local" / "g", **kw)
    monkeypatch.setenv(FAIL_ONCE, f"0:{tmp_path / 'markers'}")
    (tmp_path / "beam").mkdir()
    with pytest.raises(Exception, match="injected failure of shard 0"):
        generate_on_beam(inputs / "run", 8, out=tmp_path / "beam" / "g", beam=THREADS, **kw)
    assert listing(tmp_path / "beam") == []
    generate_on_beam(inputs / "run", 8, out=tmp_path / "beam" / "g", beam=THREADS, **kw)
    assert digests(tmp_path / "beam" / "g") == digests(tmp_path / "local" / "g")
    assert listing(tmp_path / "beam") == listing(tmp_path / "local")

"""`fuse` and `generate` with --runner beam: a run, and bad input (exit 2, one line, nothing written)."""

import sys

import pytest

from tests.beam.conftest import digests
from tests.conftest import listing
from tfsynth.cli import main


def _argv(inputs, command, out):
    if command == "fuse":
        real = f"npz:{inputs / 'real.npz'}"
        return ["fuse", "--real", real, "--counts", "real=6", "--num-shards", "2", "--out", out]
    return ["generate", "--model", str(inputs / "run"), "-n", "6", "--examples-per-shard", "3"] + [
        "--out",
        out,
    ]


@pytest.mark.parametrize("command", ["fuse", "generate"])
def test_runner_beam_writes_what_the_local_runner_writes(inputs, tmp_path, capsys, command):
    options = "--direct_num_workers=2 --direct_running_mode=multi_threading"
    assert main(_argv(inputs, command, str(tmp_path / "local" / "d"))) == 0
    argv = _argv(inputs, command, str(tmp_path / "beam" / "d"))
    assert main([*argv, "--runner", "beam", f"--beam-options={options}"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("wrote 6 ")
    assert digests(tmp_path / "beam" / "d") == digests(tmp_path / "local" / "d")


@pytest.mark.parametrize("command", ["fuse", "generate"])
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--runner", "dataflow"], "--runner: expected local or beam, got 'dataflow'"),
        (["--beam-options=--direct_num_workers=2"], "--beam-options: needs --runner beam"),
        (["--runner", "beam", "--beam-options=--job_name='x"], "--beam-options: No closing"),
        (["--runner", "beam", "--beam-options=--num_wrkers=2"], "Beam does not know"),
        (["--runner", "beam", "--beam-options=--direct_num_workers=x"], "invalid int value"),
        (["--runner", "beam", "--out", "nosuchfs://b/d"], "TensorFlow has no file system for"),
        (["--runner", "beam", "--out", "gs://b/d"], "writes local or mounted paths only"),
        (["--runner", "beam", "--shard-index", "0"], "drop --shard-index"),
        (["--runner", "beam", "--merge"], "drop --merge"),
    ],
)
def test_bad_input_exits_2_with_one_line(inputs, tmp_path, capsys, command, extra, message):
    if command == "generate" and extra[-1] in ("0", "--merge"):
        pytest.skip("generate has no --shard-index or --merge")
    before = listing(tmp_path)
    rc = main(_argv(inputs, command, str(tmp_path / "d")) + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err
    assert err[0].startswith("tfsynth: error: ")
    assert listing(tmp_path) == before


def test_without_beam_runner_beam_says_how_to_install(inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)
    rc = main([*_argv(inputs, "fuse", str(tmp_path / "d")), "--runner", "beam"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [
        'tfsynth: error: --runner beam needs Apache Beam: pip install "tfsynth[beam]" '
        "(or: pip install apache-beam)"
    ]
    assert listing(tmp_path) == []

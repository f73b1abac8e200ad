"""One error path for every command: outputs that cannot be written exit 2.

Every subcommand is walked through outputs it cannot create (a parent that
is a regular file, a missing parent below a file, a parent without write
permission); each must exit with status 2, print one line that names the
path, and leave nothing behind. Writes that fail midway (disk full) go
through the same path and leave no temporary files.
"""

from __future__ import annotations

import errno
import json
import os

import numpy as np
import pytest

from tests.conftest import listing, make_arrays
from tfsynth.cli import main


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Tiny inputs: a 24-image npz and an untrained width-4 cgan run dir."""
    from tfsynth.models import build_model

    root = tmp_path_factory.mktemp("inputs")
    images, labels = make_arrays(n=24, num_classes=3)
    np.savez(root / "tiny.npz", images=images, labels=labels)
    model = build_model("cgan", (16, 16, 1), num_classes=3, latent_dim=8, width=4, seed=1)
    model.compile()
    (root / "run").mkdir()
    model.save(root / "run" / "model.keras")
    return root


def _commands(inputs, out):
    """{name: argv} writing to `out`; every input is valid, so only `out` can fail."""
    data = f"npz:{inputs / 'tiny.npz'}"
    run_dir = str(inputs / "run")
    return {
        "data convert npz": ["data", "convert", data, "--out", f"{out}.npz"],
        "data convert dir": ["data", "convert", data, "--out", out],
        "data preview": ["data", "preview", data, "--out", f"{out}.png"],
        "augment": ["augment", "--data", data, "--policy", "digits", "-n", "4", "--out", out],
        "generate": ["generate", "--model", run_dir, "-n", "4", "--out", out],
        "fuse": ["fuse", "--real", data, "--aug-policy", "digits", "--counts", "real=4,aug=4"]
        + ["--out", out],
        "evaluate": ["evaluate", "--real", data, "--synthetic", data, "--seeds", "1"]
        + ["--no-utility", "--epochs", "1", "--out", out],
        "export": ["export", "--model", f"{run_dir}/model.keras", "--out", out],
        "train": ["train", "--data", data, "--model", "cgan", "--steps", "1", "--width", "4"]
        + ["--batch-size", "8", "--quiet", "--out", out],
        "run": ["run", "--data", data, "--preset", "smoke", "--out", out]
        + ["--saved-models", f"{out}-saved"],
        "ssl": ["ssl", "--data", data, "--epochs", "1", "--batch-size", "8", "--width", "2"]
        + ["--quiet", "--out", out],
        "pseudo-label": ["pseudo-label", "--labeled", data, "--unlabeled", data]
        + ["--ssl-epochs", "1", "--out", out],
    }


COMMAND_NAMES = [
    "data convert npz",
    "data convert dir",
    "data preview",
    "augment",
    "generate",
    "fuse",
    "evaluate",
    "export",
    "train",
    "run",
    "ssl",
    "pseudo-label",
]


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _bad_output(tmp_path, case):
    """(an output path that cannot be created, the path the message must name)."""
    if case == "parent is a file":
        (tmp_path / "afile").write_text("not a directory")
        return tmp_path / "afile" / "out"
    if case == "missing parent below a file":
        (tmp_path / "afile").write_text("not a directory")
        return tmp_path / "afile" / "missing" / "out"
    if case == "parent not writable":
        if os.geteuid() == 0:
            pytest.skip("root ignores directory permissions")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        return ro / "out"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["parent is a file", "missing parent below a file", "parent not writable"]
)
@pytest.mark.parametrize("command", COMMAND_NAMES)
def test_unwritable_output_exits_2_with_one_line(tmp_path, capsys, inputs, command, case):
    out = _bad_output(tmp_path, case)
    argv = _commands(inputs, str(out))[command]
    before = listing(tmp_path)
    try:
        rc, _, err = _run(capsys, argv)
    finally:
        for p in tmp_path.iterdir():
            if p.is_dir():
                p.chmod(0o700)
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"tfsynth: error: {out}"), lines[0]
    assert "Traceback" not in err and "Error:" not in lines[0]
    assert listing(tmp_path) == before


@pytest.mark.parametrize("option", ["--preview", "--saved-models"])
def test_unwritable_secondary_output_exits_2(tmp_path, capsys, inputs, option):
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / ("p.png" if option == "--preview" else "saved")
    data = f"npz:{inputs / 'tiny.npz'}"
    if option == "--preview":
        argv = ["augment", "--data", data, "-n", "4", "--out", str(tmp_path / "aug")]
    else:
        argv = ["run", "--data", data, "--preset", "smoke", "--out", str(tmp_path / "r")]
    before = listing(tmp_path)
    rc, _, err = _run(capsys, [*argv, option, str(bad)])
    assert rc == 2 and err.strip().splitlines() == [
        f"tfsynth: error: {bad}: cannot create it: {tmp_path / 'afile'} is not a directory"
    ]
    assert listing(tmp_path) == before


def test_debug_keeps_the_traceback(tmp_path, inputs):
    (tmp_path / "afile").write_text("x")
    argv = ["--debug", "data", "convert", f"npz:{inputs / 'tiny.npz'}"]
    with pytest.raises(NotADirectoryError):
        main([*argv, "--out", str(tmp_path / "afile" / "o.npz")])


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_writing_a_file_exits_2_and_leaves_no_temporary(
    tmp_path, capsys, inputs, monkeypatch
):
    import tfsynth.io

    monkeypatch.setattr(tfsynth.io.os, "fsync", _disk_full)
    out = tmp_path / "sub" / "d.npz"
    rc, _, err = _run(capsys, ["data", "convert", f"npz:{inputs / 'tiny.npz'}", "--out", str(out)])
    assert rc == 2
    assert err.strip().splitlines() == [f"tfsynth: error: {out}: No space left on device"]
    assert listing(tmp_path) == ["sub"]  # the parent is created (mkdir -p), nothing in it


def test_disk_full_writing_a_directory_exits_2_and_leaves_nothing(
    tmp_path, capsys, inputs, monkeypatch
):
    import tfsynth.data.records

    monkeypatch.setattr(tfsynth.data.records, "write_shard", _disk_full)
    out = tmp_path / "aug"
    argv = ["augment", "--data", f"npz:{inputs / 'tiny.npz'}", "-n", "4", "--out", str(out)]
    rc, _, err = _run(capsys, argv)
    assert rc == 2
    assert err.strip().splitlines() == [f"tfsynth: error: {out}: No space left on device"]
    assert listing(tmp_path) == []


# -- tfsynth.io: the pieces the CLI relies on ----------------------------------


def test_atomic_writers_name_the_path_and_clean_up(tmp_path, monkeypatch):
    from tfsynth.io import atomic_directory, atomic_write_bytes

    (tmp_path / "afile").write_text("x")
    with pytest.raises(NotADirectoryError) as e:
        atomic_write_bytes(tmp_path / "afile" / "deep" / "f", b"data")
    assert e.value.filename == str(tmp_path / "afile" / "deep" / "f")
    assert f"{tmp_path / 'afile'} is not a directory" in e.value.strerror
    with pytest.raises(OSError) as e, atomic_directory(tmp_path / "d") as tmp:
        (tmp / "half").write_text("half-written")
        _disk_full()
    assert (e.value.errno, e.value.filename) == (errno.ENOSPC, str(tmp_path / "d"))
    monkeypatch.setattr(os, "replace", _disk_full)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(tmp_path / "f", b"data")
    assert listing(tmp_path) == ["afile"]


def test_check_can_create(tmp_path):
    from tfsynth.io import check_can_create

    (tmp_path / "afile").write_text("x")
    check_can_create(tmp_path / "new" / "deeper" / "out")  # missing parents are created later
    check_can_create(tmp_path / "afile")  # an existing output is left to its writer
    with pytest.raises(NotADirectoryError, match="afile is not a directory"):
        check_can_create(tmp_path / "afile" / "x" / "out")
    assert listing(tmp_path) == ["afile"]


def test_os_error_message():
    from tfsynth.io import os_error_message

    assert os_error_message(OSError(errno.ENOSPC, "No space left on device")) == (
        "No space left on device"
    )
    assert os_error_message(PermissionError(13, "Permission denied", "a", None, "b")) == (
        "a -> b: Permission denied"
    )


# -- ddpm: sampler options and image sides the U-Net cannot halve -------------


@pytest.fixture(scope="module")
def ddpm_inputs(inputs):
    """A saved untrained width-4 ddpm (3 classes, 16x16) and a 30x30 npz beside `inputs`."""
    from tfsynth.models import build_model

    model = build_model("ddpm", (16, 16, 1), num_classes=3, width=4, seed=1, sample_steps=2)
    model.compile(jit_compile=False)
    (inputs / "ddpm").mkdir(exist_ok=True)
    model.save(inputs / "ddpm" / "model.keras")
    images, labels = make_arrays(n=24, h=30, w=30, num_classes=3)
    np.savez(inputs / "side30.npz", images=images, labels=labels)
    return inputs


def _ddpm_commands(root, out):
    """{case: (argv, words the one line must contain)}; each input is bad in one way."""
    ddpm, cgan = str(root / "ddpm"), str(root / "run")
    tiny, side30 = f"npz:{root / 'tiny.npz'}", f"npz:{root / 'side30.npz'}"
    gen = ["generate", "--model", ddpm, "-n", "4", "--out", out]
    fuse = ["fuse", "--real", tiny, "--gen", ddpm, "--counts", "real=4,gen=4", "--out", out]
    train = ["train", "--data", side30, "--model", "ddpm", "--steps", "1", "--width", "4"]
    return {
        "generate guidance < 0": (
            [*gen, "--guidance", "-1"],
            "guidance: must be a finite number >= 0",
        ),
        "generate steps < 1": (
            [*gen, "--steps", "0"],
            "steps: DDIM sampling needs an integer >= 1",
        ),
        "generate --steps on a cgan": (
            ["generate", "--model", cgan, "-n", "4", "--steps", "3", "--out", out],
            "--steps and --guidance set a ddpm's DDIM sampler; this is a GAN",
        ),
        "fuse guidance < 0": ([*fuse, "--guidance", "-0.5"], "guidance: must be"),
        "fuse steps < 1": ([*fuse, "--steps", "0"], "steps: DDIM sampling needs"),
        "train side 30": (
            [*train, "--batch-size", "8", "--quiet", "--out", out],
            "sides 30x30 cannot be halved 2 times for the U-Net",
        ),
        "train side 30 with --val": (
            [*train, "--batch-size", "8", "--val", side30, "--select", "agreement", "--out", out],
            "sides 30x30 cannot be halved",
        ),
        "run side 30": (
            ["run", "--data", side30, "--model", "ddpm", "--preset", "smoke", "--out", out]
            + ["--saved-models", f"{out}-saved"],
            "sides 30x30 cannot be halved",
        ),
    }


DDPM_CASES = [
    "generate guidance < 0",
    "generate steps < 1",
    "generate --steps on a cgan",
    "fuse guidance < 0",
    "fuse steps < 1",
    "train side 30",
    "train side 30 with --val",
    "run side 30",
]


@pytest.mark.parametrize("case", DDPM_CASES)
def test_ddpm_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path, capsys, ddpm_inputs, case
):
    argv, words = _ddpm_commands(ddpm_inputs, str(tmp_path / "out"))[case]
    rc, _, err = _run(capsys, argv)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("tfsynth: error: ") and words in lines[0], lines[0]
    assert listing(tmp_path) == []


def test_ddpm_generate_takes_steps_and_guidance(tmp_path, capsys, ddpm_inputs):
    argv = ["generate", "--model", str(ddpm_inputs / "ddpm"), "-n", "3", "--labels", "0,1,2"]
    assert (
        _run(capsys, [*argv, "--steps", "1", "--guidance", "2", "--out", str(tmp_path / "a")])[0]
        == 0
    )
    gen = json.loads((tmp_path / "a" / "manifest.json").read_text())["metadata"]["generator"]
    assert (gen["sample_steps"], gen["guidance"]) == (1, 2.0)

"""tfsynth.validation and train(val=...): scalars in the event files, the best model kept."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import listing, make_arrays
from tfsynth.cli import main
from tfsynth.data import ImageDataset
from tfsynth.errors import ConfigError
from tfsynth.evaluation.classifier import build_classifier
from tfsynth.evaluation.distribution import fid
from tfsynth.training import train
from tfsynth.validation import SampleScorer, ValidationMonitor, failed

TINY = {"width": 4, "latent_dim": 8, "verbose": 0, "jit_compile": False}


def _data(n=16, h=16, k=2, seed=0, name="tiny"):
    images, labels = make_arrays(n=n, h=h, w=h, num_classes=k, seed=seed)
    return ImageDataset(images, labels, class_names=["a", "b", "c"][:k], name=name)


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from every event file under log_dir."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tf.io.gfile.glob(str(log_dir / "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, float(tf.make_ndarray(v.tensor))))
    return out


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    out = tmp_path_factory.mktemp("val") / "cgan"
    clf = build_classifier((16, 16, 1), 2, width=4, seed=3)
    summary = train(
        _data(),
        "cgan",
        epochs=3,
        out=out,
        batch_size=4,
        val=_data(8, seed=1, name="val"),
        classifier=clf,
        eval_every=1,
        **TINY,
    ).summary
    return out, summary, clf


def test_event_files_hold_val_fid_and_label_agreement(validated):
    out, summary, _ = validated
    scalars = _scalars(out / "tensorboard" / "validation")
    history = json.loads((out / "validation.json").read_text())["history"]
    assert [s for s, _ in scalars["val/fid"]] == [4, 8, 12]  # steps of epochs 1..3
    assert [round(v, 3) for _, v in scalars["val/fid"]] == [round(h["fid"], 3) for h in history]
    agreement = [v for _, v in scalars["val/label_agreement"]]
    assert all(a in {i / 8 for i in range(9)} for a in agreement)  # 8 validation samples


def test_best_epoch_is_kept_as_model_and_last_as_last(validated):
    out, summary, _ = validated
    history = json.loads((out / "validation.json").read_text())["history"]
    best = min(history, key=lambda h: h["fid"])
    assert summary["val_best_step"] == best["step"] and summary["val_fid"] == best["fid"]
    assert summary["val_select"] == "fid" and summary["val_evaluations"] == 3
    kept = keras.saving.load_model(out / "model.keras")
    last = keras.saving.load_model(out / "last.keras")
    assert int(kept.train_steps.numpy()) == best["step"]
    assert int(last.train_steps.numpy()) == 12
    assert (out / "classifier.keras").is_file()


def test_scorer_fid_matches_reference_and_agreement_counts():
    clf = build_classifier((16, 16, 1), 2, width=4, seed=0)
    ref, _ = make_arrays(n=40, seed=0)
    fake, _ = make_arrays(n=40, seed=1)
    scorer = SampleScorer(clf, ref)
    feats = keras.Model(clf.inputs, clf.get_layer("features").output)
    f = lambda x: feats.predict(x.astype("float32") / 127.5 - 1, verbose=0)  # noqa: E731
    probs = clf.predict(fake.astype("float32") / 127.5 - 1, verbose=0)
    labels = np.arange(40) % 2
    got = scorer(fake, labels)
    assert got["fid"] == pytest.approx(fid(f(ref), f(fake)), rel=1e-4)
    assert got["label_agreement"] == np.mean(probs.argmax(1) == labels)


def test_failure_rule():
    assert failed({"fid": 3.0, "label_agreement": 0.4}, None)[0]
    assert not failed({"fid": 3.0, "label_agreement": 0.9}, 1.0)[0]
    bad, why = failed({"fid": 30.0}, 1.0)
    assert bad and "20x the real-vs-real floor 1.00" in why


def test_agreement_selection_needs_a_conditional_model(tmp_path):
    with pytest.raises(ConfigError, match="--select agreement: needs a class-conditional"):
        train(_data(), "dcgan", epochs=1, out=tmp_path / "r", batch_size=4,
              val=_data(8, seed=1), select="agreement", **TINY)  # fmt: skip
    assert listing(tmp_path) == []
    mon = ValidationMonitor(build_classifier((16, 16, 1), 2, width=4), _data(8), tmp_path)
    assert mon.select == "fid" and listing(tmp_path) == []


@pytest.mark.parametrize(
    "val_kwargs, extra, message",
    [
        ({"h": 28}, [], "images are 28x28x1 but tiny has 16x16x1"),
        ({"k": 3}, [], "3 classes but tiny has 2"),
        ({}, ["--select", "loss"], "--select: expected one of fid, agreement, got 'loss'"),
        ({}, ["--eval-every", "0"], "--eval-every: expected a positive number of epochs"),
    ],
)
def test_train_cli_bad_validation_input(tmp_path, capsys, val_kwargs, extra, message):
    images, labels = make_arrays(n=16, num_classes=2)
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    v = _data(8, seed=1, **val_kwargs)
    np.savez(tmp_path / "v.npz", images=v.images, labels=v.labels)
    out = tmp_path / "out"
    argv = ["train", "--data", f"npz:{tmp_path / 'd.npz'}", "--val", f"npz:{tmp_path / 'v.npz'}",
            "--model", "cgan", "--epochs", "1", "--batch-size", "4", "--width", "4",
            "--latent-dim", "8", "--quiet", "--out", str(out), *extra]  # fmt: skip
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message.split(" but ")[0] in err and len(err.splitlines()) == 1, err
    assert not out.exists()

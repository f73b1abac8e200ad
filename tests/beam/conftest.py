"""Inputs shared by the Beam tests: tiny real data, a cgan run dir, dataset-directory sources."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_arrays

pytest.importorskip("apache_beam")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Real npz (24 images, 2 classes), a cgan run (model.keras, classifier.keras), three dirs."""
    from tests.test_curation import calibrated_classifier
    from tfsynth.data import ImageDataset, write_dataset_dir
    from tfsynth.models import build_model

    root = tmp_path_factory.mktemp("beam_inputs")
    images, labels = make_arrays(n=24, num_classes=2)
    names = np.array(["a", "b"])
    np.savez(root / "real.npz", images=images, labels=labels, class_names=names)
    model = build_model(
        "cgan", (16, 16, 1), num_classes=2, latent_dim=8, width=4, seed=1, class_names=list(names)
    )
    model.compile()
    (root / "run").mkdir()
    model.save(root / "run" / "model.keras")
    calibrated_classifier(model)[0].save(root / "run" / "classifier.keras")
    for name, seed in (("aug", 2), ("gen", 3), ("pseudo", 4)):
        ds = ImageDataset(*make_arrays(n=18, num_classes=2, seed=seed), class_names=list(names))
        write_dataset_dir(root / name, ds, examples_per_shard=10)
    return root


def digests(directory) -> dict[str, str]:
    """SHA-256 of every file a build leaves, but summary.json (it holds timings)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(directory).iterdir())
        if p.name != "summary.json"
    }

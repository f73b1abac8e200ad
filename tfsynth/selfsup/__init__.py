"""Self-supervised features and semi-supervised pseudo-labels (D_pseudo).

- `train_ssl(SSLConfig(...), out)`: a SimCLR encoder trained on images
  without their labels (`tfsynth ssl`); `load_ssl(DIR).encoder` embeds.
- `pseudo_label(PseudoLabelConfig(...), out)`: labels unlabelled images from
  a few labelled ones in that feature space and writes a dataset directory
  with provenance (`tfsynth pseudo-label`).
"""

from tfsynth.selfsup.features import (
    embed,
    knn_accuracy,
    knn_proba,
    label_propagation,
    linear_probe,
)
from tfsynth.selfsup.networks import build_encoder, build_projection_head, nt_xent_loss
from tfsynth.selfsup.pseudo import PseudoLabelConfig, pseudo_label
from tfsynth.selfsup.simclr import SimCLR, build_simclr
from tfsynth.selfsup.train import SSLConfig, load_ssl, train_ssl

__all__ = [
    "PseudoLabelConfig",
    "SSLConfig",
    "SimCLR",
    "build_encoder",
    "build_projection_head",
    "build_simclr",
    "embed",
    "knn_accuracy",
    "knn_proba",
    "label_propagation",
    "linear_probe",
    "load_ssl",
    "nt_xent_loss",
    "pseudo_label",
    "train_ssl",
]

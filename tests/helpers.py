"""Shared contract checks for tfsynth trainers, in the manner of KerasHub's `TestCase`.

`trainer_state` and `max_abs_diff` compare two trainers variable by
variable (weights, seed generator states, optimizer slots and counters);
`run_trainer_contract` is the check every model name goes through.
"""

import numpy as np

OPTIMIZER_ATTRS = ("optimizer", "d_optimizer", "g_optimizer")


def trainer_state(model) -> list[np.ndarray]:
    """Every variable of a trainer, in a fixed order: the model's, then each optimizer's.

    Compared by position, not by path: two loaded copies of a model get
    different auto-numbered optimizer names.
    """
    arrays = [np.asarray(v.numpy()) for v in model.variables]
    for attr in OPTIMIZER_ATTRS:
        opt = getattr(model, attr, None)
        if opt is not None:
            arrays += [np.asarray(v.numpy()) for v in opt.variables]
    return arrays


def max_abs_diff(a, b) -> float:
    """The largest |a - b| over two trainers' `trainer_state` (shapes must match)."""
    sa, sb = trainer_state(a), trainer_state(b)
    assert [x.shape for x in sa] == [x.shape for x in sb], "different variables"
    return max(
        float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)), initial=0.0))
        for x, y in zip(sa, sb)
    )

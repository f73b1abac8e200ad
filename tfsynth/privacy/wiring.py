"""What `tfsynth.training.train` calls for DP training (one call per place).

`train(..., dp=DPConfig(...))` resolves the request into a plan dict that
is kept in the run config (`resolve`), makes the built trainer private
(`make_trainer_private`), draws its batches by Poisson sampling
(`epoch_batches`), adds the `PrivacyBudget` callback (`callbacks`) and
reports the spent budget (`summary`). `guarantee` states a trained model's
budget for `generate`, `export` and `evaluate`.
"""

from __future__ import annotations

import os
from typing import Any

from tfsynth.errors import ConfigError
from tfsynth.privacy.config import DPConfig
from tfsynth.privacy.plan import PrivacyPlan, plan_privacy

NEIGHBOURS = "add or remove one training example"


def resolve(dp: DPConfig | dict | None, config: dict, num_examples: int) -> dict | None:
    """The plan (as a dict, for the run config) of `dp` for a run's `config`; None without DP."""
    if dp is None:
        return None
    if config.get("select") is not None:
        raise ConfigError(
            "--val: DP training keeps its last model; a validation monitor would choose among "
            "checkpoints (train without --val and evaluate afterwards)"
        )
    plan = plan_privacy(
        DPConfig.from_dict(dp) if isinstance(dp, dict) else dp,
        model=config["model"],
        num_examples=num_examples,
        batch_size=config["batch_size"],
        steps=config["epochs"] * config["steps_per_epoch"],
        loss=config.get("loss"),
        n_critic=config.get("n_critic"),
        precision=config.get("precision", "float32"),
    )
    return plan.to_dict()


def make_trainer_private(trainer, plan: dict | None):
    """`trainer` training with DP-SGD under `plan`; unchanged when `plan` is None."""
    if plan is None:
        return trainer
    from tfsynth.models import GAN, VAE
    from tfsynth.privacy import gan, vae

    if isinstance(trainer, GAN):
        return gan.make_private(trainer, plan)
    if isinstance(trainer, VAE):
        return vae.make_private(trainer, plan)
    raise ConfigError(f"dp: DP training supports GANs and VAEs, not a {type(trainer).__name__}")


def epoch_batches(trainer, data, batch_size, steps_per_epoch, *, seed, start_step, stop_step):
    """The trainer's batches: `data.epoch_batches`, or Poisson draws for a DP trainer."""
    plan = getattr(trainer, "dp", None)
    if plan is None:
        return data.epoch_batches(
            batch_size, steps_per_epoch, seed=seed, start_step=start_step, stop_step=stop_step
        )
    from tfsynth.privacy.sampling import poisson_batches

    images, labels = data.numpy()
    return poisson_batches(
        images, labels, plan.sampling_rate, plan.physical_batch,
        key=trainer._dp_sampling_key, start_step=start_step, stop_step=stop_step,
    )  # fmt: skip


def callbacks(plan: dict | None, log_dir: str | os.PathLike) -> list:
    """[PrivacyBudget] for a DP run (its TensorBoard scalars under `log_dir`), else []."""
    if plan is None:
        return []
    from tfsynth.privacy.callback import PrivacyBudget

    return [PrivacyBudget(plan, log_dir)]


def _budget(plan: PrivacyPlan, steps: int) -> dict[str, Any]:
    return {
        "epsilon": plan.epsilon_after(steps),
        "delta": plan.delta,
        "epsilon_target": plan.epsilon,
        "noise_multiplier": plan.noise_multiplier,
        "clip": plan.clip,
        "steps": int(steps),
        "sampling": f"{plan.sampling} (rate {plan.sampling_rate:.4g})",
        "accountant": plan.accountant,
        "neighbouring": NEIGHBOURS,
    }


def summary(plan: dict | None, steps: int) -> dict[str, Any]:
    """summary.json's `dp_*` keys after `steps` steps ({} without DP)."""
    if plan is None:
        return {}
    return _dp_keys(_budget(PrivacyPlan.from_dict(plan), steps))


def guarantee(trainer) -> dict[str, Any] | None:
    """The (epsilon, delta) a trained model was released under, or None (no DP)."""
    plan = getattr(trainer, "dp", None)
    if plan is None:
        return None
    return _budget(plan, int(trainer.train_steps.numpy()))


def model_summary(trainer) -> dict[str, Any]:
    """A model's `dp_*` summary keys (the export's summary.json); {} without DP."""
    budget = guarantee(trainer)
    return {} if budget is None else _dp_keys(budget)


def _dp_keys(budget: dict[str, Any]) -> dict[str, Any]:
    return {f"dp_{k}": v for k, v in budget.items()}

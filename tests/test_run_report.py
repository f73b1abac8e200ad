"""tfsynth.run_report: the verdict sentence, the ladder, the warnings."""

from tfsynth.run_report import _ladder_table, verdict, warnings


def _row(label, family, val, test, std=0.001):
    return {
        "label": label,
        "family": family,
        "val_accuracy": val,
        "val_accuracy_std": std,
        "test_accuracy": test,
        "test_accuracy_std": std,
    }


def _search(chosen, rows):
    ladder = {}
    for i, r in enumerate(rows):
        j = ladder.get(r["family"])
        if j is None or r["val_accuracy"] > rows[j]["val_accuracy"]:
            ladder[r["family"]] = i
    return {"table": rows, "chosen": chosen, "ladder": ladder, "config": {"seeds": 2}}


ROWS = [
    _row("real only", "D", 0.960, 0.9642),
    _row("real + 1x (aug)", "D+aug", 0.975, 0.9711),
    _row("real + 1x (aug 50%, cgan 50%, conf >= 0.9)", "D+aug+gen", 0.980, 0.9733),
]


def test_verdict_states_the_test_gain_of_the_chosen_mix():
    text, kind = verdict(_search(2, ROWS))
    assert kind == "good"
    assert text.startswith(
        "D' beats D on the test split: 0.973 ± 0.001 vs 0.964 ± 0.001 (+0.9 points)"
    )


def test_verdict_when_real_only_wins_or_d_prime_loses_on_test():
    text, kind = verdict(_search(0, ROWS))
    assert kind == "warn" and text.startswith("D' = D: no synthetic mix beat real only")
    worse = [ROWS[0], _row("real + 1x (aug)", "D+aug", 0.97, 0.950)]
    text, kind = verdict(_search(1, worse))
    assert kind == "bad" and "does not beat D" in text and "(-1.4 points)" in text


def test_verdict_calls_a_gap_inside_the_seed_spread_a_tie():
    d = {**ROWS[0], "test_accuracy": 0.98625, "test_accuracy_std": 0.00075}
    dp = {**ROWS[1], "test_accuracy": 0.9860, "test_accuracy_std": 0.001}
    text, kind = verdict(_search(1, [d, dp]))
    assert kind == "warn"
    assert text.startswith("D' ties D on the test split: ") and "inside the seed spread" in text
    text, kind = verdict(_search(1, [d, {**dp, "test_accuracy": 0.9880}]))
    assert kind == "good" and text.startswith("D' beats D")


def test_ladder_lists_each_family_best_on_validation_with_its_test_delta():
    header, body = _ladder_table(_search(2, ROWS))[1:]
    assert header[-1] == "Δ test (points)"
    assert [r[0] for r in body] == [
        "D (real only)",
        "D + augmentation",
        "D + augmentation + generated",
    ]
    assert [r[-1] for r in body] == ["+0.0", "+0.7", "+0.9"]


def test_warnings_name_failed_generators_rejected_classes_and_memorization():
    trains = {"cgan": {"generator_failed": True, "generator_failed_reason": "label agreement 0.1"}}
    gens = {"cvae": {"kept_fraction_per_class.3": 0.2, "kept_fraction_per_class.4": 0.9}}
    lines = warnings({"memorization_rate": 0.3}, trains, gens)
    assert lines[0] == "Generator cgan failed and was left out of D': label agreement 0.1."
    assert lines[1] == "The classifier mostly rejects cvae's samples of class 3 (20% kept)."
    assert lines[2].startswith("Memorization: 30.0% of synthetic samples")
    assert warnings({"memorization_rate": 0.06}, {}, {}) == []

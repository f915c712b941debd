"""Multiplicity adjustment within confirmatory and exploratory families."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest

from designkit.analysis import adjust, assign_families, effects_table


def family_frame(p: list[float], family: list[str]) -> pd.DataFrame:
    return pd.DataFrame({
        "experiment": [f"e{i}" for i in range(len(p))], "step": 1, "primary": True,
        "comparison": "vs_control", "p": p, "family": family, "p_adj": np.nan,
    })


def test_holm_matches_hand_computation():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    frame = family_frame([0.01, 0.04, 0.03, 0.005], ["confirmatory"] * 4)
    assert adjust(frame, "holm")["p_adj"].tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg_matches_hand_computation():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04
    frame = family_frame([0.01, 0.04, 0.03, 0.005], ["exploratory"] * 4)
    assert adjust(frame, "fdr_bh")["p_adj"].tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_families_are_adjusted_separately():
    frame = family_frame([0.01, 0.02, 0.01, 0.02, 0.03], ["confirmatory"] * 2 + ["exploratory"] * 3)
    p_adj = adjust(frame, "bonferroni")["p_adj"].tolist()
    assert p_adj == pytest.approx([0.02, 0.04, 0.03, 0.06, 0.09])


def test_method_can_differ_by_family():
    frame = family_frame([0.01, 0.04, 0.01, 0.04], ["confirmatory"] * 2 + ["exploratory"] * 2)
    p_adj = adjust(frame, {"confirmatory": "bonferroni", "exploratory": "fdr_bh"})["p_adj"]
    assert p_adj.tolist() == pytest.approx([0.02, 0.08, 0.02, 0.04])


def test_untestable_rows_stay_nan_and_do_not_enlarge_the_family():
    frame = family_frame([0.01, np.nan, 0.02], ["confirmatory"] * 3)
    p_adj = adjust(frame, "bonferroni")["p_adj"]
    assert np.isnan(p_adj[1]) and p_adj[[0, 2]].tolist() == pytest.approx([0.02, 0.04])


def test_duplicated_index_is_handled_by_position():
    frame = family_frame([0.01, 0.02], ["confirmatory"] * 2)
    frame.index = [0, 0]
    assert adjust(frame, "bonferroni")["p_adj"].tolist() == pytest.approx([0.02, 0.04])


def test_unknown_method_is_rejected():
    with pytest.raises(ValueError, match="multiple-testing method"):
        adjust(family_frame([0.1], ["confirmatory"]), "fdr_magic")


def test_assign_families_marks_primary_final_step_vs_control_only():
    frame = pd.DataFrame({
        "experiment": ["a", "a", "a", "a", "b"],
        "step": [100, 200, 200, 200, 50],
        "primary": [True, True, False, True, True],
        "comparison": ["vs_control", "vs_control", "vs_control", "window_contrast", "vs_control"],
        "p": 0.5,
    })
    assert assign_families(frame)["family"].tolist() == [
        "exploratory", "confirmatory", "exploratory", "exploratory", "confirmatory"]


def test_adjust_on_effects_table_keeps_confirmatory_family_size(two_experiments):
    frame, specs = two_experiments
    adjusted = adjust(effects_table(frame, specs), "bonferroni")
    confirmatory = adjusted[adjusted["family"] == "confirmatory"]
    expected = np.minimum(confirmatory["p"] * 3, 1.0)
    assert confirmatory["p_adj"].tolist() == pytest.approx(expected.tolist())


def test_holm_controls_familywise_error_under_global_null():
    """Simulation: 10 uniform null p-values per family; FWER must not exceed alpha."""
    rng = np.random.default_rng(5)
    replicates, size = 400, 10
    p = rng.random((replicates, size))
    frame = pd.DataFrame({
        "experiment": np.repeat([f"r{i}" for i in range(replicates)], size),
        "step": 1, "primary": True, "comparison": "vs_control", "p": p.ravel(),
        "family": np.repeat([f"rep{i}" for i in range(replicates)], size),
    })
    # statsmodels' Holm runs gc.collect() per family; a frozen heap keeps that cheap.
    gc.freeze()
    try:
        rejected = adjust(frame, "holm")["p_adj"].to_numpy().reshape(replicates, size) < 0.05
    finally:
        gc.unfreeze()
    fwer = rejected.any(axis=1).mean()
    # exact value for independent uniforms: 1 - 0.995**10 = 0.0489
    assert fwer <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / replicates)
    assert fwer > 0.01  # not vacuous

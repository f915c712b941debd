"""The dose controllers and slot filling (torch-free): the paper's rule, clamps, round robin, cyclic paraphrases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from designkit.controllers import CONTROLLERS, ControllerSpec, DoseDoubling, assign_fills, fills_from_log, make_controller


def _spec(**params) -> ControllerSpec:
    return ControllerSpec(type="dose_doubling", every=10, probe="fact", column="logprob", slots_per_interval=8, params=params)


def test_dose_doubling_doubles_below_the_linear_target_and_halves_above_it():
    controller = make_controller(_spec(final_target=0.08, initial_dose=4), [0, 1], total_steps=100)
    assert isinstance(controller, DoseDoubling) and CONTROLLERS.get("dose_doubling") is DoseDoubling
    assert controller.decide(0, {}) == {0: 4, 1: 4}  # the first interval: the initial dose
    assert controller.target(50) == pytest.approx(0.04)
    # item 0 below the target at step 50 (P = 0.01 < 0.04), item 1 above it (P = 0.5)
    assert controller.decide(50, {0: math.log(0.01), 1: math.log(0.5)}) == {0: 8, 1: 2}


def test_dose_doubling_respects_the_change_limit_and_the_clamp():
    controller = make_controller(_spec(initial_dose=6, min_dose=2, max_dose=9, max_change=2), [0, 1], total_steps=10)
    controller.decide(0, {})
    assert controller.decide(5, {0: -50.0, 1: 0.0}) == {0: 8, 1: 4}  # 12 limited to +2; 3 limited to -2
    assert controller.decide(5, {0: -50.0, 1: 0.0}) == {0: 9, 1: 2}  # clamped to [2, 9]


def test_controller_state_round_trips():
    first = make_controller(_spec(initial_dose=3), [4, 7], total_steps=10)
    first.decide(0, {})
    first.decide(2, {4: -9.0, 7: 0.0})
    second = make_controller(_spec(initial_dose=3), [4, 7], total_steps=10)
    second.load_state_dict(first.state_dict())
    values = {4: 0.0, 7: -9.0}
    assert second.decide(5, values) == first.decide(5, values)


def _slots(n: int) -> pd.DataFrame:
    return pd.DataFrame({"global_seq": np.arange(n, dtype=np.int64) // 2, "offset": (np.arange(n) % 2 * 20).astype(np.int32)})


def test_fills_take_slots_in_turns_and_paraphrases_in_cyclic_order():
    cursor: dict[int, int] = {}
    fills, filled = assign_fills(_slots(5), {3: 4, 1: 1, 2: 0}, {3: 3, 1: 2}, cursor)
    assert fills["item_index"].tolist() == [1, 3, 3, 3, 3]
    assert filled == {3: 4, 1: 1, 2: 0}
    assert fills["payload"].tolist() == [0, 0, 1, 2, 0]  # item 3 has 3 paraphrases: 0, 1, 2, then 0 again
    fills, filled = assign_fills(_slots(3), {3: 4, 1: 4}, {3: 3, 1: 2}, cursor)
    assert filled == {3: 1, 1: 2}  # fewer slots than asked: both items cut back alike
    assert fills["payload"].tolist() == [1, 1, 0]


def test_fills_are_rederived_from_the_logged_decisions():
    reserved = pd.DataFrame({"global_seq": [0, 0, 1, 9, 9], "offset": [0, 20, 0, 0, 20], "experiment": "facts",
                             "interval": [0, 0, 0, 1, 1], "n_tokens": 20})
    log = pd.DataFrame({"interval": [0, 0, 1, 1], "experiment": "facts", "item_index": [1, 2, 1, 2], "requested": [2, 2, 1, 0]})
    fills = fills_from_log(reserved, log, {})
    assert list(zip(fills["global_seq"], fills["offset"], fills["item_index"])) == [(0, 0, 1), (0, 20, 2), (1, 0, 1), (9, 0, 1)]

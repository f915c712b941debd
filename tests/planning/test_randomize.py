import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from designkit.planning.randomize import assign_arms, largest_remainder


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500), st.lists(st.floats(0.05, 1.0), min_size=1, max_size=5))
def test_arm_sizes_are_floor_or_ceiling_of_exact_share(n, raw_shares):
    shares = np.array(raw_shares) / sum(raw_shares)
    counts = largest_remainder(n, shares)
    assert counts.sum() == n
    exact = n * shares
    assert np.all(counts >= np.floor(exact - 1e-9)) and np.all(counts <= np.ceil(exact + 1e-9))


def test_rounding_is_reported_and_matches_assignment():
    result = assign_arms(401, ["control", "x4", "x16"], [0.5, 0.25, 0.25], np.random.default_rng(0))
    assert result.rounding["assigned"].tolist() == [201, 100, 100]
    assert result.rounding["exact"].tolist() == [200.5, 100.25, 100.25]
    assert np.bincount(result.arm_of_item).tolist() == [201, 100, 100]


def test_stratified_assignment_is_balanced_within_every_stratum():
    strata = np.array(["a"] * 37 + ["b"] * 50 + ["c"] * 13)
    result = assign_arms(len(strata), ["c", "t1", "t2"], [0.5, 0.25, 0.25], np.random.default_rng(5), strata)
    table = pd.crosstab(strata, result.arm_of_item)
    for stratum, row in table.iterrows():
        n = (strata == stratum).sum()
        expected = n * np.array([0.5, 0.25, 0.25])
        assert np.all(np.abs(row.to_numpy() - expected) <= 1.5), (stratum, row.to_numpy(), expected)


def test_assignment_depends_only_on_the_seed():
    a = assign_arms(100, ["c", "t"], [0.5, 0.5], np.random.default_rng(11)).arm_of_item
    b = assign_arms(100, ["c", "t"], [0.5, 0.5], np.random.default_rng(11)).arm_of_item
    c = assign_arms(100, ["c", "t"], [0.5, 0.5], np.random.default_rng(12)).arm_of_item
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_assignment_is_not_confounded_with_item_order():
    # over many seeds, the first item is treated about half the time
    treated = [assign_arms(10, ["c", "t"], [0.5, 0.5], np.random.default_rng(s)).arm_of_item[0] for s in range(400)]
    assert 0.4 < np.mean(treated) < 0.6

"""The keyed Feistel permutation of corpus windows and its inverse (torch-free, shared by planner and engine)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from designkit.planning.permutation import FeistelPermutation


@given(n=st.integers(1, 5000), key=st.integers(0, 2**32), start=st.integers(0, 4999))
@settings(max_examples=60, deadline=None)
def test_feistel_permutation_is_a_bijection_of_its_domain(n, key, start):
    perm = FeistelPermutation(n, [key, 1])
    values = perm(np.arange(n))
    np.testing.assert_array_equal(np.sort(values), np.arange(n))
    # random access agrees with the batch evaluation
    position = start % n
    assert perm([position])[0] == values[position]


def test_feistel_permutation_depends_on_its_key_and_only_on_it():
    a, b = FeistelPermutation(1000, [7, 0]), FeistelPermutation(1000, [7, 1])
    x = np.arange(1000)
    np.testing.assert_array_equal(a(x), FeistelPermutation(1000, [7, 0])(x))
    assert (a(x) != b(x)).mean() > 0.9
    # far from the identity and from a shift: a real shuffle
    assert abs(np.corrcoef(x, a(x))[0, 1]) < 0.1


def test_feistel_permutation_of_a_huge_domain_costs_no_memory():
    perm = FeistelPermutation(100_000_000, [1, 2])
    values = perm(np.arange(10_000))
    assert values.min() >= 0 and values.max() < 100_000_000
    assert len(np.unique(values)) == len(values)



@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 100, 1000, 4096, 4097, 65_537])
def test_inverse_undoes_the_permutation_over_the_whole_domain(n):
    perm = FeistelPermutation(n, [11, n])
    x = np.arange(n)
    np.testing.assert_array_equal(perm.inverse(perm(x)), x)
    np.testing.assert_array_equal(perm(perm.inverse(x)), x)


@given(n=st.integers(1, 3000), key=st.integers(0, 2**32))
@settings(max_examples=40, deadline=None)
def test_inverse_is_a_bijection_that_undoes_any_keyed_permutation(n, key):
    perm = FeistelPermutation(n, [key, 5])
    x = np.arange(n)
    np.testing.assert_array_equal(perm.inverse(perm(x)), x)


def test_inverse_refuses_values_outside_the_domain():
    with pytest.raises(ValueError, match="positions in"):
        FeistelPermutation(10, [1]).inverse([10])

"""A keyed bijection of ``[0, n)`` in O(1) memory: a cycle-walking Feistel network.

The base data order is one seeded permutation of the corpus windows per epoch. A
``np.random.permutation`` of 100M windows costs 800 MB per epoch on every rank and has to
be rebuilt after a resume; the Feistel network instead evaluates any position on demand,
so a batch costs O(batch size) time and no memory whatever the corpus size, and rank
slices and resumes need no shared state. Cycle walking (Black & Rogaway 2002, "Ciphers
with arbitrary finite domains") turns the permutation of ``[0, 4^k)`` into one of
``[0, n)``: values that land outside the domain are encrypted again until they land
inside. Since ``4^k < 4n``, a value walks fewer than four times on average.

``inverse`` undoes it (decrypt, walking back until inside the domain), so the planner can
map a corpus window to the global sequences that read it, and the engine a sequence to its
window. The module is torch-free: the planner and the engine share this one definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROUNDS = 6  # Luby-Rackoff: 4 rounds give a pseudo-random permutation; 6 leave margin for a fast round function

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_MUL2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finalizer (Steele et al. 2014): a fast, well-mixing uint64 hash."""
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MUL1
    z = (z ^ (z >> np.uint64(27))) * _MUL2
    return z ^ (z >> np.uint64(31))


class FeistelPermutation:
    """``perm(positions)`` maps positions in ``[0, n)`` to a keyed permutation of ``[0, n)``."""

    def __init__(self, n: int, key: Sequence[int] | int, rounds: int = ROUNDS):
        if n < 1:
            raise ValueError(f"expected a domain of at least one element, got n={n}")
        self.n = int(n)
        self.half_bits = max(1, ((self.n - 1).bit_length() + 1) // 2)
        self.mask = np.uint64((1 << self.half_bits) - 1)
        entropy = [int(k) for k in key] if isinstance(key, Sequence) else [int(key)]
        self.round_keys = np.random.SeedSequence(entropy).generate_state(rounds, dtype=np.uint64)

    def _encrypt(self, x: np.ndarray) -> np.ndarray:
        shift = np.uint64(self.half_bits)
        left, right = x >> shift, x & self.mask
        for key in self.round_keys:
            left, right = right, left ^ (_splitmix64(right ^ key) & self.mask)
        return (left << shift) | right

    def _decrypt(self, y: np.ndarray) -> np.ndarray:
        shift = np.uint64(self.half_bits)
        left, right = y >> shift, y & self.mask
        for key in self.round_keys[::-1]:
            left, right = right ^ (_splitmix64(left ^ key) & self.mask), left
        return (left << shift) | right

    def _walk(self, values: np.ndarray, step) -> np.ndarray:
        x = np.asarray(values, dtype=np.int64)
        if x.size and (x.min() < 0 or x.max() >= self.n):
            raise ValueError(f"expected positions in [0, {self.n}), got [{x.min()}, {x.max()}]")
        y = step(x.astype(np.uint64).ravel())
        outside = np.flatnonzero(y >= self.n)
        while outside.size:
            y[outside] = step(y[outside])
            outside = outside[y[outside] >= self.n]
        return y.astype(np.int64).reshape(x.shape)

    def __call__(self, positions: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """The permuted value of each position."""
        return self._walk(positions, self._encrypt)

    def inverse(self, values: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """The position each value sits at: ``inverse(perm(x)) == x`` for every x in ``[0, n)``."""
        return self._walk(values, self._decrypt)


STREAM_LABEL = 0x5EED_0F_DA7A  # separates the base order's keys from other uses of the run seed


class BaseOrder:
    """Which training-region window each base sequence reads (docs/formats.md, "Token positions").

    Epoch ``e = b // n_windows`` visits the windows in the order of its own keyed
    permutation, so base sequence ``b`` reads window ``perm_e(b % n_windows)``; the inverse
    gives, for a window, the one sequence of each epoch that reads it.
    """

    def __init__(self, n_windows: int, seed: int):
        self.n_windows = int(n_windows)
        self.seed = int(seed)
        self._perms: dict[int, FeistelPermutation] = {}

    def permutation(self, epoch: int) -> FeistelPermutation:
        if epoch not in self._perms:
            self._perms[epoch] = FeistelPermutation(self.n_windows, [self.seed, STREAM_LABEL, int(epoch)])
        return self._perms[epoch]

    def window_of(self, base_seqs: np.ndarray | Sequence[int]) -> np.ndarray:
        seqs = np.asarray(base_seqs, dtype=np.int64)
        epoch, position = np.divmod(seqs, self.n_windows)
        out = np.empty_like(seqs)
        for e in np.unique(epoch).tolist():
            mask = epoch == e
            out[mask] = self.permutation(e)(position[mask])
        return out

    def sequences_reading(self, windows: np.ndarray | Sequence[int], first: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Every base sequence in ``[first, end)`` that reads one of ``windows``.

        Returns ``(which, base_seq)``: the index into ``windows`` and the sequence, sorted by sequence.
        """
        windows = np.asarray(windows, dtype=np.int64)
        which, found = [], []
        if end > first and len(windows):
            for e in range(first // self.n_windows, (end - 1) // self.n_windows + 1):
                seqs = e * self.n_windows + self.permutation(e).inverse(windows)
                keep = (seqs >= first) & (seqs < end)
                which.append(np.flatnonzero(keep))
                found.append(seqs[keep])
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        which_a, seq_a = np.concatenate(which), np.concatenate(found)
        order = np.argsort(seq_a, kind="stable")
        return which_a[order], seq_a[order]

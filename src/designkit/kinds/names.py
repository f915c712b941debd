"""Seeded invented names for synthetic items: pronounceable, unique, absent from English text."""

from __future__ import annotations

import numpy as np

_ONSETS = ("b", "br", "d", "dr", "f", "g", "gr", "k", "kl", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "y")
_CODAS = ("", "", "n", "r", "s", "l", "th", "x")


def invented_names(n: int, rng: np.random.Generator, syllables: tuple[int, int] = (2, 3), taken: set[str] | None = None) -> list[str]:
    """``n`` distinct capitalized names of 2–3 syllables, none of them in ``taken``."""
    taken = set() if taken is None else set(taken)
    names: list[str] = []
    while len(names) < n:
        k = int(rng.integers(syllables[0], syllables[1] + 1))
        parts = [
            _ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))] + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(k)
        ]
        name = "".join(parts).capitalize()
        if name not in taken and len(name) >= 4:
            taken.add(name)
            names.append(name)
    return names

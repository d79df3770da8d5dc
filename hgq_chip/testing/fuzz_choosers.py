"""Sources of choices for the model fuzzer's ``draw_spec``: a seeded ``random.Random`` (the
benchmark's reproducible examples) or a Hypothesis ``draw`` (the tests, so failures shrink)."""

from __future__ import annotations

import random


class Chooser:
    """A source of choices; subclasses implement ``integer``."""

    def integer(self, lo: int, hi: int) -> int:  # inclusive bounds
        raise NotImplementedError

    def choice(self, options):
        return options[self.integer(0, len(options) - 1)]

    def chance(self, percent: int) -> bool:
        """True with about ``percent`` % probability; shrinks towards False."""
        return self.integer(0, 99) >= 100 - percent


class RandomChooser(Chooser):
    """Choices from ``random.Random(seed)``: the benchmark's reproducible source."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def integer(self, lo, hi):
        return self.rng.randint(lo, hi)


class HypothesisChooser(Chooser):
    """Choices drawn through a Hypothesis ``draw`` (so failures shrink), except the weighted coins
    of ``chance``: Hypothesis favours boundary values and repeats choices of earlier examples,
    which drew rare kinds (always refused) in a large share of the examples. Those coins come
    from a ``random.Random`` seeded by one Hypothesis draw, so each kind keeps its percentage."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st
        self.coins = random.Random(draw(st.integers(0, 2**32 - 1)))

    def chance(self, percent: int) -> bool:
        return self.coins.randrange(100) < percent

    def integer(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def choice(self, options):
        return self.draw(self.st.sampled_from(options))

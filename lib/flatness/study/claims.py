"""The paper's claims and the one rule that decides whether this study reproduces them.

A :class:`Claim` is one statement of the paper with the comparisons that test it. A
:class:`Comparison` is a difference the paper predicts the sign of (or predicts to be absent),
measured over seeds and paired by seed: two surrogates that share a seed's initialisation and
batch order, or two epochs of one run, so that an offset a seed has everywhere cancels out.

**The rule** (:func:`standing`, :func:`decide`), the same for gains and losses: a comparison
is *beyond* its noise when the mean paired difference is at least :attr:`Comparison.floor`
away from zero and its t statistic (mean over standard error) exceeds the two-sided 95 %
critical value of Student's t with ``n - 1`` degrees of freedom (4.30 with three seeds, 3.18
with four; the normal 1.96 for a binomial proportion). Beyond in the predicted direction
counts *for* the paper, beyond in the other *against* it, anything else is *within* the noise;
one seed gives no standard error and is always within. A predicted absence of difference
counts *for* when the whole 95 % interval lies inside ``±floor`` (an equivalence test),
*against* when beyond. A claim is

- **reproduced** when every comparison counts for it,
- **partly reproduced** when some count for it and none against,
- **contradicted** when some count against it and none for,
- **mixed** when some count for and some against,
- **inconclusive** when every comparison is within the noise,
- **not computed** when it has no comparison with numbers.

Chapter pages, the results page and the README's table all render these objects.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flatness.errors import FlatnessError

REPRODUCED, PARTLY, CONTRADICTED, MIXED, INCONCLUSIVE, NOT_COMPUTED = (
    "reproduced", "partly reproduced", "contradicted", "mixed", "inconclusive", "not computed")
STATUSES = (REPRODUCED, PARTLY, CONTRADICTED, MIXED, INCONCLUSIVE, NOT_COMPUTED)
FOR, AGAINST, WITHIN, MISSING = "for", "against", "within", "missing"

#: Two-sided confidence of the test behind every status.
CONFIDENCE = 0.95
#: Smallest success-rate or accuracy difference (a fraction: one percentage point) that counts.
MIN_POINTS = 0.01


def critical_t(df: float) -> float:
    """The two-sided :data:`CONFIDENCE` critical value of Student's t with ``df`` degrees of
    freedom (the normal quantile for ``df = inf``)."""
    from scipy.stats import norm, t

    q = 0.5 + CONFIDENCE / 2
    return float(norm.ppf(q) if math.isinf(df) else t.ppf(q, df))


@dataclass(frozen=True)
class Comparison:
    """One measured difference, its standard error, and the sign the paper predicts.

    ``predicted`` is +1 (the paper predicts a positive difference), -1 (negative) or 0 (no
    difference). ``scale`` converts the stored difference to the unit shown (100 for a
    fraction shown in points or percent).
    """

    label: str
    mean: float | None
    stderr: float | None
    n: int
    df: float
    predicted: int
    unit: str = "pts"
    scale: float = 100.0
    floor: float = 0.0

    def __post_init__(self) -> None:
        if self.predicted not in (-1, 0, 1):
            raise FlatnessError(f"comparison {self.label!r}: predicted must be -1, 0 or +1, "
                                f"got {self.predicted!r}")

    @classmethod
    def paired(cls, label: str, differences: Iterable[float | None], predicted: int,
               **kwargs: object) -> Comparison:
        """From per-seed paired differences (missing seeds dropped)."""
        d = [float(x) for x in differences if x is not None and math.isfinite(float(x))]
        if not d:
            return cls(label, None, None, 0, 0.0, predicted, **kwargs)  # type: ignore[arg-type]
        std = statistics.stdev(d) if len(d) > 1 else None
        return cls.from_stats(label, sum(d) / len(d), std, len(d), predicted, **kwargs)

    @classmethod
    def from_stats(cls, label: str, mean: float | None, std: float | None, n: int,
                   predicted: int, **kwargs: object) -> Comparison:
        """From the mean and standard deviation of ``n`` per-seed paired differences."""
        if mean is None or n < 1:
            return cls(label, None, None, 0, 0.0, predicted, **kwargs)  # type: ignore[arg-type]
        stderr = None if n < 2 or std is None else std / math.sqrt(n)
        return cls(label, float(mean), stderr, n, float(max(n - 1, 0)), predicted,
                   **kwargs)  # type: ignore[arg-type]

    @classmethod
    def proportion(cls, label: str, observed: float | None, reference: float, n_images: int,
                   predicted: int, **kwargs: object) -> Comparison:
        """An accuracy on ``n_images`` against a fixed ``reference`` (e.g. chance): binomial
        standard error of the reference, normal critical value."""
        if observed is None:
            return cls(label, None, None, 0, 0.0, predicted, **kwargs)  # type: ignore[arg-type]
        stderr = math.sqrt(reference * (1 - reference) / max(n_images, 1))
        return cls(label, observed - reference, stderr, n_images, math.inf, predicted,
                   **kwargs)  # type: ignore[arg-type]

    @property
    def t(self) -> float | None:
        """Mean over standard error (None without one; +-inf when the error is zero)."""
        if self.mean is None or self.stderr is None:
            return None
        if self.stderr == 0:
            return math.copysign(math.inf, self.mean) if self.mean else 0.0
        return self.mean / self.stderr

    @property
    def basis(self) -> str:
        """What the uncertainty comes from: ``4 seeds``, or ``2000 images`` (binomial)."""
        if math.isinf(self.df):
            return f"{self.n} images"
        return f"{self.n} seed{'s' if self.n != 1 else ''}"

    @property
    def half_width(self) -> float | None:
        """Half the 95 % confidence interval of the mean difference."""
        return None if self.stderr is None else critical_t(self.df) * self.stderr

    def shown(self, value: float | None, signed: bool = True) -> str:
        """A value in the comparison's display unit."""
        if value is None:
            return "n/a"
        digits = 1 if self.scale >= 100 else 2
        text = f"{self.scale * value:{'+' if signed else ''}.{digits}f}"
        return f"{text} {self.unit}".rstrip()


def standing(c: Comparison) -> str:
    """``for``, ``against``, ``within`` or ``missing``: the module docstring's rule."""
    if c.mean is None:
        return MISSING
    t, half = c.t, c.half_width
    if t is None or half is None:
        return WITHIN
    beyond = abs(t) > critical_t(c.df) and abs(c.mean) >= c.floor
    if c.predicted == 0:
        if beyond:
            return AGAINST
        return FOR if c.floor > 0 and abs(c.mean) + half < c.floor else WITHIN
    if not beyond:
        return WITHIN
    return FOR if (c.mean > 0) == (c.predicted > 0) else AGAINST


def decide(comparisons: Sequence[Comparison]) -> str:
    """A claim's status from its comparisons' standings (the module docstring's table)."""
    standings = [standing(c) for c in comparisons]
    measured = [s for s in standings if s != MISSING]
    if not measured:
        return NOT_COMPUTED
    n_for, n_against = measured.count(FOR), measured.count(AGAINST)
    if n_for and n_against:
        return MIXED
    if n_against:
        return CONTRADICTED
    if n_for == len(measured):
        return REPRODUCED
    return PARTLY if n_for else INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    """One statement of the paper and the comparisons of this study that test it."""

    chapter: str
    key: str
    paper: str
    comparisons: tuple[Comparison, ...] = ()
    scale: str = "-"
    #: A premise the paper builds on (e.g. Ilyas et al.'s datasets), not its own finding.
    prerequisite: bool = False
    note: str = ""

    @property
    def status(self) -> str:
        return decide(self.comparisons)

    def counts(self) -> dict[str, int]:
        """How many comparisons stand for, against, within, missing."""
        standings = [standing(c) for c in self.comparisons]
        return {s: standings.count(s) for s in (FOR, AGAINST, WITHIN, MISSING)}

    def summary(self) -> str:
        """One line of numbers: how the comparisons stand, and each difference."""
        if not self.comparisons:
            return self.note or "not computed"
        k = self.counts()
        measured = len(self.comparisons) - k[MISSING]
        head = (f"{k[FOR]} of {measured} for, {k[AGAINST]} against, {k[WITHIN]} within the "
                "noise")
        parts = [f"{c.label} {c.shown(c.mean)} (± {c.shown(c.half_width, signed=False)}, "
                 f"{c.basis})" if c.mean is not None
                 else f"{c.label} n/a" for c in self.comparisons]
        return f"{head}: " + "; ".join(parts) + (f". {self.note}" if self.note else "")

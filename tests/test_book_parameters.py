"""check_parameters: the clear, early errors chapter notebooks rely on."""

from __future__ import annotations

import pytest

from flatness.errors import FlatnessError
from flatness.minimizers import MINIMIZERS
from flatness.notebook import check_parameters


def test_valid_parameters_are_cleaned() -> None:
    p = check_parameters(scale="cpu", seeds=[0, 1], device=None, data="/d", recompute=False,
                         rho=1, rhos=[0, 0.5], eps="4/255", epochs=[1, 2],
                         minimizers=list(MINIMIZERS)[:1], own=3)
    assert p["rho"] == 1.0 and isinstance(p["rho"], float)
    assert p["eps"] == pytest.approx(4 / 255) and p["own"] == 3 and p["epochs"] == [1, 2]


def test_a_scale_may_carry_overrides_of_its_design() -> None:
    """Every field of the study's design, even one no notebook parameter names, is reachable
    from a notebook: ``-p scale "cpu[hessian.trace_samples=20]"``."""
    label = "cpu[lsam_rho=0.2;hessian.trace_samples=20]"
    assert check_parameters(scale=label, recompute=False)["scale"] == label


@pytest.mark.parametrize(("params", "message"), [
    ({"scale": "huge"}, "unknown scale 'huge'"),
    ({"scale": "cpu[lsam=0.2]"}, "unknown scale field 'lsam'"),
    ({"scale": "cpu[hessian.every=often]"}, "scale field hessian.every: cannot read 'often'"),
    ({"seeds": "0"}, "seeds must be a list.*-y"),
    ({"seeds": [0, 0]}, "distinct"),
    ({"seeds": [0.5]}, "integers"),
    ({"rho": -0.1}, "rho must be >= 0"),
    ({"rho": "abc"}, "rho must be a number"),
    ({"rhos": [0.1, -1]}, ">= 0"),
    ({"eps": 0}, r"eps must be in \(0, 1\]"),
    ({"recompute": "yes"}, "True or False"),
    ({"device": 0}, "device must be a string"),
    ({"minimizers": ["nope"]}, "unknown minimizer 'nope'"),
    ({"minimizers": "sgd"}, "must be a list"),
    ({"techniques": ["zz"]}, "unknown technique 'zz'"),
    ({"epochs": -1}, "epochs must be"),
])
def test_bad_parameters_raise_clear_errors(params, message) -> None:
    with pytest.raises(FlatnessError, match=message):
        check_parameters(**params)


def test_every_chapter_defaults_to_its_committed_results() -> None:
    """``scale="auto"``: a reader of the book sees the committed results, not smoke numbers."""
    from pathlib import Path

    import papermill

    notebooks = sorted(Path(__file__).parents[1].joinpath("notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 6
    for notebook in notebooks:
        declared = papermill.inspect_notebook(str(notebook))
        assert declared["scale"]["default"] == '"auto"', notebook.name

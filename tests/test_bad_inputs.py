"""Every bad input is one line on stderr, exit status 2, and nothing half-written.

A table of command lines (unknown names, zero or negative sizes, eps outside (0, 1], malformed
fractions, missing, corrupt or truncated data, a corrupt checkpoint or resume state) and a
table of chapter-notebook parameters (checked by the cell every chapter runs first). Plus the
situations that must *not* be errors: an interrupted run resumed, and two identical runs
started at once on one cache.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flatness.cli import main
from flatness.errors import FlatnessError
from flatness.notebook import check_parameters
from flatness.paths import repo_root

TINY_TRAIN = ["--scale", "smoke", "--device", "cpu", "--set", "epochs=1",
              "--set", "eval_subset=20", "--train-subset", "20"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, cifar_tiny: Path) -> dict[str, Path]:
    """Tiny data (intact, truncated, not an archive), a one-epoch run and a corrupt copy."""
    root = tmp_path_factory.mktemp("bad-inputs")
    blob = cifar_tiny.read_bytes()
    (root / "truncated.tar.gz").write_bytes(blob[: len(blob) // 2])
    (root / "garbage.tar.gz").write_bytes(b"this is not a tar.gz archive")
    assert main(["train", *TINY_TRAIN, "--data", str(cifar_tiny), "--out", str(root / "runs")]) == 0
    run = next(p for p in (root / "runs").iterdir() if p.is_dir())  # not its .lock file
    corrupt = root / "corrupt-run"
    shutil.copytree(run, corrupt)
    (corrupt / "checkpoints" / "epoch_0001.pt").write_bytes(b"not a checkpoint")
    return {"data": cifar_tiny, "truncated": root / "truncated.tar.gz",
            "garbage": root / "garbage.tar.gz", "run": run, "corrupt": corrupt,
            "missing": root / "no-such" / "cifar.tar.gz"}


# (argv, a fragment of the message); {name} is replaced by files[name], {out} by a fresh folder
CASES = [
    (["train", "--scale", "huge"], "unknown scale 'huge'"),
    (["train", "--arch", "resnet1000"], "resnet1000"),
    (["train", "--dataset", "d_zz"], "unknown dataset 'd_zz'"),
    (["train", "--minimizer", "adamw-sam"], "unknown minimizer"),
    (["train", "--train-subset", "0"], "--train-subset expects a number of images >= 1"),
    (["train", "--train-subset", "-5"], "--train-subset expects a number of images >= 1"),
    (["train", "--train-subset", "100000"], "asked for a subset of 100000 samples"),
    (["train", "--epochs", "0"], "expected an integer >= 1, got '0'"),
    (["train", "--lr", "-0.1"], "expected a number > 0"),
    (["train", "--set", "epochs=-1"], "epochs must be >= 1"),
    (["train", "--set", "epochs=x"], "scale field epochs: cannot read 'x'"),
    (["train", "--set", "nope=1"], "unknown scale field 'nope'"),
    (["train", "--set", "eps=2"], "eps must lie in (0, 1]"),
    (["train", "--set", "seeds=0,-1"], "seeds must be integers >= 0"),
    (["train", "--seed", "-1"], "expected an integer >= 0, got '-1'"),
    (["train", "--from-epoch", "1"], "--from-epoch needs --from-run"),
    (["train", "--from-run", "{run}"], "--from-run needs --from-epoch"),
    (["train", "--from-run", "{run}", "--from-epoch", "1", "--epochs", "3"], "drop --epochs"),
    (["train", "--from-run", "{missing}", "--from-epoch", "1"], "not a flatness run"),
    (["train", "--decay-epochs", "a,b"], "expected comma-separated epochs"),
    (["train", "--data", "{missing}"], "missing data path"),
    (["train", "--data", "{truncated}"], "corrupt archive"),
    (["train", "--data", "{garbage}"], "corrupt archive"),
    (["attack", "--surrogate", "{run}", "--eps", "0"], "expected a number > 0"),
    (["attack", "--surrogate", "{run}", "--eps", "2"], "expected a budget in (0, 1]"),
    (["attack", "--surrogate", "{run}", "--eps", "4/0"], "expected a number > 0"),
    (["attack", "--surrogate", "{run}", "--eps", "four"], "expected a number > 0"),
    (["attack", "--surrogate", "{run}", "--steps", "0"], "expected an integer >= 1"),
    (["attack", "--surrogate", "{run}", "--images", "-1"], "expected an integer >= 1"),
    (["attack", "--surrogate", "{run}", "--batch-size", "0"], "expected an integer >= 1"),
    (["attack", "--surrogate", "{run}", "--technique", "foo"], "foo"),
    (["attack", "--surrogate", "{missing}"], "is not a flatness run directory"),
    (["attack", "--surrogate", "{corrupt}"], "is unreadable"),
    (["sharpness", "--run", "{run}", "--images", "0"], "expected an integer >= 1"),
    (["sharpness", "--run", "{run}", "--epochs", "x"], "--epochs expects comma-separated"),
    (["sharpness", "--run", "{run}", "--epochs", "7"], "no checkpoint for epochs [7]"),
    (["sharpness", "--run", "{corrupt}", "--images", "20", "--batch", "10"], "is unreadable"),
    (["landscape", "--run", "{run}", "--grid", "0"], "--grid expects N or NxM"),
    (["landscape", "--run", "{run}", "--range", "1:-1"], "lo < hi"),
    (["landscape", "--run", "{run}", "--range", "1"], "lo < hi"),
    (["landscape", "--run", "{run}", "--images", "0"], "expected an integer >= 1"),
    (["robust-datasets", "--only", "d_zz"], "unknown dataset(s) ['d_zz']"),
    (["targets", "--scale", "huge"], "unknown scale 'huge'"),
    (["reproduce", "--chapters", "nope", "--plan"], "unknown chapter 'nope'"),
    (["chapter", "nope"], "unknown chapter 'nope'"),
    (["chapter", "lr_decay", "-p", "attack_steps", "0"], "attack_steps must be an integer >= 1"),
    (["chapter", "lr_decay", "-p", "eps", "4/0"], "eps must be a number"),
    (["chapter", "lr_decay", "-p", "seeds", "[0, 0]"], "seeds must be distinct"),
    (["book", "-p", "rhoo", "0.5"], "no selected chapter takes parameter(s) rhoo"),
    (["no-such-command"], "invalid choice"),
]
#: Options every command of CASES gets unless it sets them (data, output folder).
DEFAULTS = {"train": ["--scale", "smoke", "--device", "cpu", "--data", "{data}", "--out", "{out}"],
            "attack": ["--scale", "smoke", "--device", "cpu", "--data", "{data}", "--out", "{out}"],
            "sharpness": ["--data", "{data}", "--device", "cpu", "--out", "{out}/s.json"],
            "landscape": ["--data", "{data}", "--device", "cpu", "--out", "{out}"]}


def _argv(argv: list[str], files: dict[str, Path], out: Path) -> list[str]:
    given = set(argv)
    extra: list[str] = []
    defaults = DEFAULTS.get(argv[0], [])
    for option, value in zip(defaults[::2], defaults[1::2]):
        if option not in given:
            extra += [option, value]
    names = {k: str(v) for k, v in files.items()} | {"out": str(out)}
    return [a.format(**names) for a in [*argv, *extra]]


def _snapshot(*folders: Path) -> set[str]:
    """Every file and folder below ``folders``, lock files included: a computation that fails
    leaves neither (:func:`flatness.store.get_or_compute`)."""
    return {str(p) for folder in folders if folder.exists() for p in folder.rglob("*")}


@pytest.mark.parametrize(("argv", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_command_line_is_one_line_exit_2_nothing_written(argv, message, files, tmp_path,
                                                             capsys) -> None:
    out = tmp_path / "out"
    cache = Path(os.environ["FLATNESS_CACHE"])
    runs_before = _snapshot(files["run"].parent, files["corrupt"])
    try:
        code = main(_argv(argv, files, out))
    except SystemExit as stop:  # argparse: a bad option value
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert message in err, err
    assert not out.exists() or not any(out.rglob("*.json")), sorted(out.rglob("*"))
    assert _snapshot(files["run"].parent, files["corrupt"]) == runs_before
    assert not [p for p in cache.rglob("*") if ".tmp" in p.name]  # no half-written file


def test_the_command_line_exits_with_status_2(files) -> None:
    proc = subprocess.run([sys.executable, "-m", "flatness", "attack", "--surrogate",
                           str(files["run"]), "--eps", "2", "--out", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_interrupted_run_resumes_and_a_corrupt_resume_state_is_one_line(files, tmp_path,
                                                                           capsys) -> None:
    from flatness.scales import get_scale
    from flatness.training import TrainConfig, train

    config = TrainConfig.from_scale(get_scale("smoke"), seed=3, epochs=2, checkpoint_epochs=(),
                                    train_subset=20, eval_subset=20)
    run = train(config, data=files["data"], out=tmp_path, until_epoch=1, progress=False)
    assert run.status["status"] == "running" and run.resume_path.is_file()
    argv = ["train", "--scale", "smoke", "--device", "cpu", "--data", str(files["data"]),
            "--out", str(tmp_path), "--seed", "3", "--epochs", "2", "--checkpoint-epochs", "none",
            "--train-subset", "20", "--set", "eval_subset=20"]
    broken = tmp_path / "broken"
    shutil.copytree(run.dir, broken / run.dir.name)
    (broken / run.dir.name / "resume.pt").write_bytes(b"truncated")
    assert main([*argv[:-6], "--out", str(broken), *argv[-4:]]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "cannot resume" in err, err
    assert main(argv) == 0  # the interrupted run continues where it stopped
    assert capsys.readouterr().out.strip().endswith(run.dir.name)
    assert [row["epoch"] for row in run.metrics()] == [1, 2]
    assert run.status["status"] == "complete"


def test_two_identical_runs_started_at_once_share_one_run(files, tmp_path) -> None:
    cmd = [sys.executable, "-m", "flatness", "train", *TINY_TRAIN, "--seed", "4",
           "--data", str(files["data"]), "--out", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    dirs = {out.strip().splitlines()[-1] for out, _ in results}
    assert len(dirs) == 1
    run = Path(dirs.pop())
    assert json.loads((run / "status.json").read_text())["status"] == "complete"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # trained once


# -- chapter notebooks: the check cell every chapter runs right after its parameters ------------

def _injected(**params) -> dict:
    """A kernel namespace after papermill injected ``params`` (IPython's input history)."""
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items())
    return {"In": ["", "# Parameters a reader can change\nscale = 'auto'\n", source]}


NOTEBOOK_CASES = [
    ({"rhoo": 0.5}, {}, "does not take parameter(s) rhoo"),
    ({}, {"scale": "huge"}, "unknown scale 'huge'"),
    ({}, {"attack_steps": 0}, "attack_steps must be an integer >= 1"),
    ({}, {"attack_steps": -3}, "attack_steps must be an integer >= 1"),
    ({}, {"eps": 2}, r"eps must be in (0, 1]"),
    ({}, {"eps": 0}, r"eps must be in (0, 1]"),
    ({}, {"eps": "4/0"}, "eps must be a number"),
    ({}, {"target_eps": {"d_r": "16/"}}, "eps must be a number"),
    ({}, {"target_eps": "16/255"}, "target_eps must be a mapping"),
    ({}, {"seeds": "0"}, "seeds must be a list"),
    ({}, {"seeds": []}, "non-empty"),
    ({}, {"rho": -1}, "rho must be >= 0"),
    ({}, {"sam_rho": -1}, "sam_rho must be >= 0"),
    ({}, {"rhos": {"sam": [0.1, -1]}}, ">= 0"),
    ({}, {"lgv_lr_factor": 0}, "lgv_lr_factor must be > 0"),
    ({}, {"robustness_images": 0}, "robustness_images must be an integer >= 1"),
    ({}, {"landscape_epochs": [-1]}, "epochs must be"),
    ({}, {"techniques": ["zz"]}, "unknown technique 'zz'"),
]


@pytest.mark.parametrize(("injected", "params", "message"), NOTEBOOK_CASES,
                         ids=[str(c[2]) for c in NOTEBOOK_CASES])
def test_bad_notebook_parameter_is_one_line(injected, params, message) -> None:
    declared = {"scale": "auto", "recompute": False, **params}
    with pytest.raises(FlatnessError) as info:
        check_parameters(_injected(**injected, **params), **declared)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_live_namespace_without_injected_parameters_is_never_refused() -> None:
    namespace = {"In": ["", "d = {'x': 1}\nresult = None\n"], "d": {"x": 1}}
    assert check_parameters(namespace, scale="auto", recompute=False)["scale"] == "auto"


def _notebooks() -> list[Path]:
    return sorted((repo_root() / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("notebook", _notebooks(), ids=lambda p: p.stem)
def test_every_parameter_is_typed_documented_and_checked(notebook: Path, caplog) -> None:
    """papermill --help-notebook reads every parameter with a type and a help, and the cell
    after the parameters passes every one of them (so an unknown one can be refused)."""
    import nbformat
    import papermill

    with caplog.at_level("WARNING", logger="papermill"):
        declared = papermill.inspect_notebook(str(notebook))
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    for name, info in declared.items():
        assert info["inferred_type_name"] != "None" and info["help"], (name, info)
    cells = nbformat.read(notebook, as_version=4).cells
    index = next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", []))
    check = ast.parse(cells[index + 1].source)
    calls = [n for n in ast.walk(check) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") == "check_parameters"]
    assert len(calls) == 1 and ast.unparse(calls[0].args[0]) == "globals()"
    assert [k.arg for k in calls[0].keywords] == list(declared)
    assert all(ast.unparse(k.value) == k.arg for k in calls[0].keywords)

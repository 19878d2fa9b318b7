"""The training engine: schedules, run identity, learning, resumption, caching, divergence."""

from __future__ import annotations

import json

import pytest
import torch

from flatness.cli import main
from flatness.errors import FlatnessError
from flatness.scales import ModelSpec, get_scale
from flatness.training import Run, TrainConfig, train
from flatness.training import engine as engine_module

SMOKE = get_scale("smoke")


def smoke_config(**overrides) -> TrainConfig:
    """The smoke surrogate recipe, its precision resolved as CPU training resolves it."""
    return TrainConfig.from_scale(SMOKE, **overrides).resolved("cpu")


def test_step_schedule_decays_after_its_epochs():
    config = TrainConfig(lr=0.1, epochs=150, decay_epochs=(50, 100))
    assert config.lr_at(1) == pytest.approx(0.1)
    assert config.lr_at(50) == pytest.approx(0.1)
    assert config.lr_at(51) == pytest.approx(0.01)
    assert config.lr_at(101) == pytest.approx(0.001)
    constant = TrainConfig(lr=0.1, epochs=10, decay_epochs=())
    assert {constant.lr_at(e) for e in range(1, 11)} == {0.1}


def test_run_id_is_a_function_of_the_configuration_and_data_copy():
    a = smoke_config(seed=0)
    assert a.run_id("copy") == smoke_config(seed=0).run_id("copy")
    assert a.run_id("copy") != smoke_config(seed=1).run_id("copy")
    assert a.run_id("copy") != a.run_id("other copy")
    assert TrainConfig.from_dict(a.to_dict()) == a
    with_rho = smoke_config(minimizer="sam", minimizer_params={"rho": 0.05})
    assert with_rho.run_id("copy") != smoke_config(minimizer="sam",
                                                   minimizer_params={"rho": 0.5}).run_id("copy")


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1.0), dict(batch_size=0),
                                 dict(adv_norm="l3"), dict(checkpoint_epochs=(99,))])
def test_invalid_configuration_is_a_clear_error(bad):
    with pytest.raises(FlatnessError, match="invalid training configuration"):
        smoke_config(**bad)


def test_config_from_another_version_is_refused():
    data = smoke_config().to_dict() | {"new_field": 1}
    with pytest.raises(FlatnessError, match="another version"):
        TrainConfig.from_dict(data)


def test_smoke_run_learns_and_records_everything(shared_cifar, tmp_path):
    config = smoke_config(train_subset=2000, eval_subset=1000, epochs=4, decay_epochs=(3,),
                          checkpoint_epochs=(2, 4))
    run = train(config, data=shared_cifar, out=tmp_path, device="cpu")
    assert run.is_complete
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["lr"] == pytest.approx(config.lr * 0.1)
    assert rows[-1]["test_acc"] > 0.2, rows  # chance is 0.1 on held-out test images
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert run.checkpoint_epochs() == [2, 4]
    weights = torch.load(run.checkpoint_path(4), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    model = run.load_model(epoch=2)
    assert not model.training
    provenance = run.provenance
    for key in ("code_commit", "device", "torch", "wall_time_s", "data_copy"):
        assert key in provenance
    assert "sha256" in provenance["data_copy"] or provenance["data_copy"]
    assert not run.resume_path.exists()


def test_resume_after_interruption_gives_identical_weights(shared_cifar, tmp_path):
    config = smoke_config(epochs=3, checkpoint_epochs=())
    straight = train(config, data=shared_cifar, out=tmp_path / "a", device="cpu")
    partial = train(config, data=shared_cifar, out=tmp_path / "b", device="cpu", until_epoch=1)
    assert not partial.is_complete and partial.resume_path.exists()
    resumed = train(config, data=shared_cifar, out=tmp_path / "b", device="cpu")
    assert resumed.is_complete
    a, b = straight.load_state_dict(), resumed.load_state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert [r["train_loss"] for r in straight.metrics()] == [
        r["train_loss"] for r in resumed.metrics()]


def test_finished_run_is_reused_without_training(shared_cifar, tmp_path, monkeypatch):
    config = smoke_config(epochs=1, checkpoint_epochs=())
    first = train(config, data=shared_cifar, out=tmp_path, device="cpu")

    def fail(*args, **kwargs):
        raise AssertionError("a finished run must not be retrained")

    monkeypatch.setattr(engine_module, "_Trainer", fail)
    again = train(config, data=shared_cifar, out=tmp_path, device="cpu")
    assert again.dir == first.dir


def test_concurrent_trainers_of_one_run_train_it_once(shared_cifar, tmp_path):
    """A second process (here: threads) waits on the run's lock, then reuses the run."""
    import threading
    import time

    from filelock import FileLock

    config = smoke_config(epochs=1, checkpoint_epochs=())
    from flatness.data import load_dataset

    run_dir = tmp_path / config.run_name(load_dataset("cifar10", shared_cifar)[0].source)
    done: list[Run] = []
    workers = [threading.Thread(target=lambda: done.append(
        train(config, data=shared_cifar, out=tmp_path, device="cpu"))) for _ in range(2)]
    with FileLock(str(run_dir) + ".lock"):  # someone else is training this run
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        assert all(w.is_alive() for w in workers) and not (run_dir / "metrics.jsonl").exists()
    for worker in workers:
        worker.join(timeout=300)
    assert len(done) == 2 and all(r.is_complete and r.dir == run_dir for r in done)
    assert [m["epoch"] for m in done[0].metrics()] == [1]  # trained once, not twice


def test_divergence_stops_with_a_recorded_message(shared_cifar, tmp_path):
    config = smoke_config(epochs=2, lr=1e12, weight_decay=0.0, checkpoint_epochs=())
    with pytest.raises(FlatnessError, match="diverged"):
        train(config, data=shared_cifar, out=tmp_path, device="cpu")
    run = Run(next(p for p in tmp_path.iterdir() if p.is_dir()))  # not its lock
    assert run.status["status"] == "diverged"
    with pytest.raises(FlatnessError, match="diverged earlier"):
        train(config, data=shared_cifar, out=tmp_path, device="cpu")


def test_swa_like_minimizers_checkpoint_their_evaluation_model(shared_cifar, tmp_path):
    from flatness.minimizers import MINIMIZERS

    if "swa" not in MINIMIZERS:
        pytest.skip("swa not registered")
    config = smoke_config(epochs=2, minimizer="swa", checkpoint_epochs=())
    run = train(config, data=shared_cifar, out=tmp_path, device="cpu")
    model = run.load_model()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_cli_train_prints_the_run_directory_last(shared_cifar, tmp_path, capsys):
    code = main(["train", "--scale", "smoke", "--set", "epochs=1", "--set", "decay_epochs=",
                 "--data", str(shared_cifar), "--out", str(tmp_path), "--device", "cpu"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    run = Run.open(last)
    assert run.is_complete
    assert json.loads(run.config_path.read_text())["config"]["epochs"] == 1


@pytest.mark.parametrize("argv, message", [
    (["--minimizer", "adamw-sam"], "unknown minimizer"),
    (["--arch", "resnet1000"], "resnet1000"),
    (["--scale", "huge"], "unknown scale"),
    (["--data", "/nonexistent/cifar.tar.gz"], "/nonexistent"),
])
def test_cli_train_bad_input_is_one_line(argv, message, shared_cifar, tmp_path, capsys):
    data = [] if "--data" in argv else ["--data", str(shared_cifar)]
    code = main(["train", "--scale", "smoke", "--out", str(tmp_path), "--device", "cpu", *data,
                 *argv])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_model_spec_targets_train_with_the_target_recipe():
    spec = ModelSpec("vgg19_bn", 0.125)
    config = TrainConfig.from_scale(SMOKE, spec, target=True)
    assert config.epochs == SMOKE.target_epochs
    assert config.decay_epochs == SMOKE.target_decay_epochs
    assert config.arch == "vgg19_bn" and config.width == 0.125


# -- fine-tuning from another run's checkpoint (late-phase SAM) --------------------------------
def test_a_fresh_run_keeps_its_key_without_init_from():
    config = smoke_config(epochs=3, checkpoint_epochs=(1, 2, 3))
    assert "init_from" not in config.to_dict()
    branched = config.branch(2, minimizer="sam", minimizer_params={"rho": 0.05})
    assert branched.parent == config and branched.init_from["epoch"] == 2
    assert TrainConfig.from_dict(branched.to_dict()) == branched
    assert branched.run_id("copy") != config.run_id("copy")
    assert branched.run_id("copy") != config.branch(1, minimizer="sam").run_id("copy")
    assert "-from2-" in branched.run_name("copy")


@pytest.mark.parametrize("changes, message", [
    (dict(width=0.5), "differs in width"),
    (dict(train_subset=64), "differs in train_subset"),
    (dict(epochs=2), "must lie in 1..1"),
    (dict(arch="vgg19_bn"), "differs in arch"),
    (dict(checkpoint_epochs=(1, 2)), "checkpoint epochs must come after"),
])
def test_a_parent_that_cannot_seed_the_run_is_refused(changes, message):
    parent = smoke_config(epochs=3, checkpoint_epochs=(1, 2, 3))
    with pytest.raises(FlatnessError, match=message):
        parent.branch(2, **changes)


def test_the_parent_must_keep_a_checkpoint_at_the_branch_epoch():
    with pytest.raises(FlatnessError, match="no checkpoint at epoch 2"):
        smoke_config(epochs=3, checkpoint_epochs=(1,)).branch(2)


def test_fine_tuning_starts_from_the_parent_checkpoint(shared_cifar, tmp_path):
    parent = smoke_config(train_subset=500, eval_subset=200, epochs=4, decay_epochs=(2,),
                          checkpoint_epochs=(2, 4))
    child = parent.branch(2, minimizer="sam", minimizer_params={"rho": 0.05})
    run = train(child, data=shared_cifar, out=tmp_path, progress=False)
    parent_run = Run(tmp_path / parent.run_name(run.info["data_source"]))
    assert parent_run.is_complete  # trained first, as a run of its own
    metrics = run.metrics()
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    assert [m.get("inherited", False) for m in metrics] == [True, True, False, False]
    assert metrics[:2] == [dict(m, inherited=True) for m in parent_run.metrics()[:2]]
    assert metrics[2]["lr"] == pytest.approx(parent.lr_at(3))  # the same schedule goes on
    assert run.checkpoint_epochs() == [4]
    # the fine-tuned weights moved away from the parent's at the same epoch
    mine, theirs = run.load_state_dict(4), parent_run.load_state_dict(4)
    assert any(not torch.equal(mine[k], theirs[k]) for k in mine)


def test_a_resumed_branch_is_the_run_a_fresh_start_with_its_schedule_trains(shared_cifar,
                                                                           tmp_path):
    """Chapter 2's single decays: the constant-rate run keeps its training state at epoch 2;
    a branch resumed there with a decay at 2 gives, bitwise, the weights and checkpoints of a
    fresh run decayed at 2, and trains only epochs 3 and 4."""
    recipe = dict(train_subset=256, eval_subset=64, epochs=4, checkpoint_epochs=(1, 2, 3, 4))
    constant = smoke_config(decay_epochs=(), state_epochs=(2,), **recipe)
    branch = constant.branch(2, resume=True, decay_epochs=(2,))
    fresh = smoke_config(decay_epochs=(2,), **recipe)
    assert branch.resumes and branch.checkpoint_epochs == (1, 2, 3, 4)
    assert "-resume2-" in branch.run_name("copy") and TrainConfig.from_dict(
        branch.to_dict()) == branch
    ran = train(branch, data=shared_cifar, out=tmp_path / "b", progress=False)
    ref = train(fresh, data=shared_cifar, out=tmp_path / "f", progress=False)
    parent = Run(tmp_path / "b" / constant.run_name(ran.info["data_source"]))
    assert parent.state_path(2).is_file() and not parent.state_path(1).exists()
    assert ran.checkpoint_epochs() == ref.checkpoint_epochs() == [1, 2, 3, 4]
    for epoch in (1, 2, 3, 4):
        mine, theirs = ran.load_state_dict(epoch), ref.load_state_dict(epoch)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), epoch
    rows, expected = ran.metrics(), ref.metrics()
    assert [m.get("inherited", False) for m in rows] == [True, True, False, False]
    for row, want in zip(rows, expected, strict=True):
        assert (row["lr"], row["train_loss"], row["test_acc"]) == (
            want["lr"], want["train_loss"], want["test_acc"])
    # the constant run went on at the full rate after epoch 2
    assert parent.metrics()[2]["lr"] == pytest.approx(constant.lr) != rows[2]["lr"]


@pytest.mark.parametrize("changes, message", [
    (dict(seed=1), "differs from its parent only in its schedule after epoch 2, not in seed"),
    (dict(minimizer="sam"), "not in minimizer"),
    (dict(decay_epochs=(1, 3)), "keeps its parent's decays before epoch 2"),
])
def test_a_resumed_branch_refuses_what_would_not_be_its_parents_run(changes, message):
    parent = smoke_config(epochs=4, decay_epochs=(), checkpoint_epochs=(2, 4),
                          state_epochs=(2,))
    with pytest.raises(FlatnessError, match=message):
        parent.branch(2, resume=True, **changes)
    with pytest.raises(FlatnessError, match="keeps no training state at epoch 3"):
        parent.branch(3, resume=True, checkpoint_epochs=(4,))
    with pytest.raises(FlatnessError, match="state epochs must lie in 1..3"):
        smoke_config(epochs=4, state_epochs=(4,))
    assert "state_epochs" not in smoke_config(epochs=4).to_dict()  # keys of runs keeping none


def test_the_command_line_fine_tunes_a_run_from_its_checkpoint(cifar_tiny, tmp_path, capsys):
    common = ["--scale", "smoke", "--device", "cpu", "--data", str(cifar_tiny),
              "--out", str(tmp_path)]
    assert main(["train", *common, "--set", "eval_subset=20", "--train-subset", "20",
                 "--epochs", "2", "--checkpoint-epochs", "1,2"]) == 0
    parent = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["train", *common, "--from-run", parent, "--from-epoch", "1",
                 "--minimizer", "sam", "--rho", "0.05"]) == 0
    child = Run.open(capsys.readouterr().out.strip().splitlines()[-1])
    assert "-sam0.05-from1-" in child.dir.name and child.is_complete
    assert child.config.parent == Run.open(parent).config


def test_the_command_line_resumes_a_run_under_another_schedule(cifar_tiny, tmp_path, capsys):
    common = ["--scale", "smoke", "--device", "cpu", "--data", str(cifar_tiny),
              "--out", str(tmp_path)]
    fresh = ["train", *common, "--set", "eval_subset=20", "--train-subset", "20", "--epochs", "3",
             "--checkpoint-epochs", "1,2,3"]
    assert main([*fresh, "--decay-epochs", "none", "--state-epochs", "1"]) == 0
    parent = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["train", *common, "--from-run", parent, "--from-epoch", "1", "--resume",
                 "--decay-epochs", "1"]) == 0
    child = Run.open(capsys.readouterr().out.strip().splitlines()[-1])
    assert "-sgd-resume1-" in child.dir.name and child.is_complete
    assert child.config.decay_epochs == (1,) and child.checkpoint_epochs() == [1, 2, 3]
    assert main([*fresh, "--decay-epochs", "1"]) == 0  # the same schedule from scratch
    scratch = Run.open(capsys.readouterr().out.strip().splitlines()[-1])
    assert all(torch.equal(v, scratch.load_state_dict(3)[k])
               for k, v in child.load_state_dict(3).items())
    sam = ["--minimizer", "sam", "--rho", "0.1"]
    for bad, message in ((sam, "continues its parent's minimizer"),
                         ([], "--resume needs --decay-epochs")):
        args = ["train", *common, "--from-run", parent, "--from-epoch", "1", "--resume", *bad]
        if bad:
            args += ["--decay-epochs", "1"]
        assert main(args) == 2 and message in capsys.readouterr().err


def test_a_compiled_run_trains_what_the_eager_run_trains(cifar_tiny, tmp_path, monkeypatch):
    # torch.compile is an execution option: the same run, the same SAM step. Dynamo traces the
    # model as in real use (its guards must re-trace when the perturbed pass freezes BatchNorm),
    # with the aot_eager backend: inductor's C++ kernels would take minutes to build here
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model: compile_(model, backend="aot_eager"))
    torch._dynamo.reset()
    config = smoke_config(train_subset=40, eval_subset=20, epochs=1, batch_size=40,
                          checkpoint_epochs=(), minimizer="sam", minimizer_params={"rho": 0.05})
    eager = train(config, data=cifar_tiny, out=tmp_path / "eager", device="cpu", progress=False)
    compiled = train(config, data=cifar_tiny, out=tmp_path / "compiled", device="cpu",
                     compile=True, progress=False)
    assert eager.dir.name == compiled.dir.name
    a, b = eager.load_state_dict(), compiled.load_state_dict()
    assert a.keys() == b.keys()
    for key in a:  # one SAM step: the perturbed pass left the running statistics alone
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-5, msg=key)
    torch._dynamo.reset()

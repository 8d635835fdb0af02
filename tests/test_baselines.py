"""The manual family: width scaling by hand, and pure distillation learning the teacher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from a2d_evo.config import DistillConfig, config_from_dict, replace
from a2d_evo.errors import ConfigError
from a2d_evo.formats import BASELINE_METHODS, baseline_name
from a2d_evo.nets.agent import Agent
from a2d_evo.nets.space import CNNArch, ConvLayer, MLPArch
from a2d_evo.runs.folder import RunFolder
from a2d_evo.train.baselines import (
    DistillOnlyLearner,
    baseline_steps,
    baseline_train_steps,
    scale_arch,
    train_baselines,
)
from a2d_evo.train.ppo import Batch


def test_scale_arch_by_hand() -> None:
    assert scale_arch(MLPArch((64, 64)), 0.25) == MLPArch((16, 16))
    assert scale_arch(MLPArch((64, 64)), 0.5) == MLPArch((32, 32))

    def nature(c1: int, c2: int, c3: int, fc: int) -> CNNArch:
        return CNNArch(
            (ConvLayer(c1, 8, 4, "valid"), ConvLayer(c2, 4, 2, "valid"),
             ConvLayer(c3, 3, 1, "valid")), fc,
        )  # fmt: skip

    assert scale_arch(nature(32, 64, 64, 512), 0.25) == nature(8, 16, 16, 128)
    assert scale_arch(nature(32, 64, 64, 512), 0.5) == nature(16, 32, 32, 256)
    assert scale_arch(nature(32, 64, 64, 512), 1.0) == nature(32, 64, 64, 512)
    assert scale_arch(MLPArch((3,)), 0.1) == MLPArch((1,))  # never below one unit
    with pytest.raises(ConfigError):
        scale_arch(nature(32, 64, 64, 512), 0.0)


def test_baseline_names() -> None:
    assert baseline_name("ppo", 0.25) == "ppo_x0.25"
    assert baseline_name("distill", 1.0) == "distill_x1"


def test_distill_only_learner_matches_the_teacher() -> None:
    """Minimising the pure distillation loss drives KL and value error towards zero."""
    torch.manual_seed(0)
    cfg = config_from_dict({"distill": {"alpha": 1.0, "beta": 0.5}})
    teacher = Agent(MLPArch((32,)), (4,), 3)
    with torch.no_grad():
        teacher.policy.weight.mul_(300.0)  # a decisive teacher, far from the student's init
    student = Agent(MLPArch((16,)), (4,), 3)
    learner = DistillOnlyLearner(student, cfg, teacher)
    obs = torch.randn(256, 4)
    zeros = torch.zeros(256)
    batch = Batch(obs, zeros.long(), zeros, zeros, zeros, zeros, None, None)
    batch = learner.prepare(batch)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        loss, logs = learner.loss(batch, 0.0)
        first = (
            first
            if first is not None
            else (float(logs["distill_actor"]), float(logs["distill_critic"]))
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, logs = learner.loss(batch, 1.0)
    assert float(logs["distill_actor"]) < 0.1 * first[0]
    assert float(logs["distill_critic"]) < 0.1 * first[1]
    assert (student(obs).logits.argmax(-1) == teacher(obs).logits.argmax(-1)).float().mean() > 0.9


def test_baseline_budgets_give_each_distilled_baseline_the_supernet_plus_one_finetune() -> None:
    cfg = config_from_dict(
        {"teacher": {"total_steps": 1000}, "supernet": {"total_steps": 300},
         "finetune": {"steps": 50}}
    )  # fmt: skip
    assert baseline_steps(cfg, "ppo") == 1000  # the teacher's recipe and budget
    assert baseline_steps(cfg, "distill") == baseline_steps(cfg, "a2d") == 350  # S + B
    assert BASELINE_METHODS == ("ppo", "distill", "a2d")


def test_a_distilled_baseline_trains_the_updates_of_the_supernet_plus_one_fine_tune() -> None:
    """Each stage rounds its budget to whole updates on its own: the Acrobot config's S =
    150,000 and B = 50,000 at 1,024 steps an update are 146 + 48 = 194 updates for a front
    member, and a single rounding of S + B = 200,000 gave a baseline 195."""
    cfg = config_from_dict(
        {"ppo": {"num_envs": 8, "num_steps": 128}, "teacher": {"total_steps": 200_000},
         "supernet": {"total_steps": 150_000}, "finetune": {"steps": 50_000}}
    )  # fmt: skip
    assert baseline_steps(cfg, "a2d") == 200_000  # the budget recorded
    assert baseline_train_steps(cfg, "a2d") == baseline_train_steps(cfg, "distill") == 194 * 1024
    assert baseline_train_steps(cfg, "ppo") == 195 * 1024  # the teacher: one stage, 195
    no_tune = replace(cfg, finetune=replace(cfg.finetune, steps=0))
    assert baseline_train_steps(no_tune, "a2d") == 146 * 1024  # no fine-tune: no update


def test_a2d_baselines_need_distillation(tmp_path: Path) -> None:
    cfg = config_from_dict({"distill": {"alpha": 0.0, "beta": 0.0}})
    with pytest.raises(ConfigError, match="a2d baselines distil from the teacher"):
        train_baselines(cfg, RunFolder(tmp_path / "run"), methods=["a2d"], progress=False)


def test_distill_baselines_need_the_actor_term(tmp_path: Path) -> None:
    """Critic-only (alpha 0, beta > 0) leaves a distill baseline's policy untrained: refused
    before anything is written; with both 0 (vanilla) it distils with the defaults."""
    cfg = config_from_dict({"distill": {"alpha": 0.0, "beta": 0.5}})
    with pytest.raises(ConfigError, match="distill.alpha is 0 .* policy would stay untrained"):
        train_baselines(cfg, RunFolder(tmp_path / "run"), methods=["distill"], progress=False)
    assert not (tmp_path / "run").exists()
    learner = DistillOnlyLearner(
        Agent(MLPArch((4,)), (4,), 2), config_from_dict({"distill": {"alpha": 0.0, "beta": 0.0}}),
        Agent(MLPArch((4,)), (4,), 2),
    )  # fmt: skip
    assert (learner.alpha, learner.beta) == (DistillConfig().alpha, DistillConfig().beta)


def _stage_config(run: RunFolder, stage: str, raw: dict[str, object]) -> None:
    from a2d_evo.config import dump_config

    (run.stage(stage) / "config.yaml").write_text(dump_config(config_from_dict(raw)))


def test_baselines_say_where_their_settings_differ_from_the_stages(
    finished: Path, tmp_path: Path
) -> None:
    """A stage run with its own --set (a teacher at another ppo.lr) leaves baselines that
    train at the run's settings: not comparable like with like, which was never said."""
    import shutil

    from test_evolve import SMALL

    from a2d_evo.train.baselines import recipe_differences

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    cfg = run.load_config()
    _stage_config(run, "teacher", SMALL)
    _stage_config(run, "supernet", SMALL)
    assert recipe_differences(cfg, run, ["ppo", "distill", "a2d"]) == []
    _stage_config(run, "teacher", {**SMALL, "ppo": {"lr": 5e-4}})
    _stage_config(run, "supernet", {**SMALL, "distill": {"beta": 0.25}})
    said = recipe_differences(cfg, run, ["ppo", "distill", "a2d"])
    assert said == [
        f"ppo.lr {cfg.ppo.lr!r} (the teacher trained with 0.0005)",
        f"distill.beta {cfg.distill.beta!r} (the supernet trained with 0.25)",
    ]
    assert recipe_differences(cfg, run, ["ppo"]) == said[:1]
    assert recipe_differences(cfg, run, ["a2d"]) == said[1:]
    # an imported teacher was trained elsewhere: its config.yaml says nothing of how
    (run.teacher_agent / "metrics.json").write_text('{"source": "import-teacher cleanrl"}')
    assert run.imported_teacher()
    assert recipe_differences(cfg, run, ["ppo", "a2d"]) == said[1:]


def test_baselines_take_the_budgets_the_run_had(finished: Path, tmp_path: Path) -> None:
    """S from the supernet's config.yaml (a --resume may raise it) or, when a delivery of the
    current front records it, from that delivery (its members' S); the teacher's steps from
    the teacher's, B from the delivered front (export --finetune N): the run's config.yaml
    and the search's can hold older figures; a delivery from another front is not read."""
    import json
    import shutil

    from test_evolve import SMALL

    from a2d_evo.runs.files import file_digest
    from a2d_evo.train.baselines import run_budgets

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    cfg = run.load_config()
    _stage_config(run, "teacher", {**SMALL, "teacher": {"total_steps": 4096}})
    _stage_config(run, "supernet", {**SMALL, "supernet": {"total_steps": 3072}})
    delivered = {"finetune_steps": 512, "front_sha256": file_digest(run.search / "front.json")}
    run.agents.mkdir(parents=True, exist_ok=True)
    (run.agents / "delivered.json").write_text(json.dumps(delivered))
    got = run_budgets(cfg, run)
    assert (got.teacher.total_steps, got.supernet.total_steps, got.finetune.steps) == (
        4096, 3072, 512
    )  # fmt: skip
    assert baseline_steps(got, "ppo") == 4096 and baseline_steps(got, "a2d") == 3072 + 512
    (run.agents / "delivered.json").write_text(json.dumps({**delivered, "front_sha256": "0"}))
    assert run_budgets(cfg, run).finetune.steps == cfg.finetune.steps
    # the delivery's own S: a train-supernet --resume raised the stage's budget after it
    # (the front, and so its members, are of the supernet at 2,048 steps)
    (run.agents / "delivered.json").write_text(json.dumps({**delivered, "supernet_steps": 2048}))
    got = run_budgets(cfg, run)
    assert (got.supernet.total_steps, got.finetune.steps) == (2048, 512)


def test_baselines_scale_the_teacher_as_it_is_and_retrain_a_stale_one(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The teacher in the run (an imported one need not be the config's teacher.arch: here a
    hand-set mlp-4 against the space's default) is what x1 scales; a finished baseline of
    another budget is trained again, one of this budget is kept; budgets and seeds cannot be
    moved from the command line."""
    import json
    import shutil

    from test_evolve import SMALL

    from a2d_evo.cli import main
    from a2d_evo.nets.agent_folder import load_agent
    from a2d_evo.train.teacher_folder import teacher_arch

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    teacher = load_agent(run.teacher_agent).arch
    assert teacher != teacher_arch(run.load_config())
    _stage_config(run, "teacher", {**SMALL, "teacher": {"total_steps": 256}})
    argv = ["baselines", str(root), "--widths", "1", "--methods", "ppo", "--quiet"]
    assert main(argv) == 0
    folder = run.baselines / "ppo_x1"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert json.loads((folder / "arch.json").read_text())["arch"] == teacher.to_dict()
    assert metrics["baseline_budget"] == 256 and metrics["env_steps"] >= 256
    written = (folder / "metrics.json").stat().st_mtime_ns
    assert main(argv) == 0  # the same budget: kept
    assert (folder / "metrics.json").stat().st_mtime_ns == written
    capsys.readouterr()  # ppo_x has no teacher term: another distill.alpha keeps it
    assert main([*argv[:-1], "--set", "distill.alpha=2"]) == 0
    assert "baseline ppo_x1: already trained, skipped" in capsys.readouterr().out
    recipe = metrics["baseline_recipe"]
    assert main([*argv[:-1], "--set", "ppo.lr=1e-4"]) == 0  # other settings: other baselines
    assert "teacher, settings or seeds; training it again" in capsys.readouterr().out
    assert json.loads((folder / "metrics.json").read_text())["baseline_recipe"] != recipe
    _stage_config(run, "teacher", {**SMALL, "teacher": {"total_steps": 512}})
    assert main(argv[:-1]) == 0
    assert "trained for another budget, teacher, settings or seeds; training it again" in (
        capsys.readouterr().out
    )
    assert json.loads((folder / "metrics.json").read_text())["baseline_budget"] == 512
    # a distilled baseline trains a front member's updates: S = 1,536 and B = 1,536 are one
    # update each at 1,024 steps an update, where S + B = 3,072 rounded once would be three
    from a2d_evo.runs.files import file_digest

    _stage_config(run, "supernet", {**SMALL, "supernet": {"total_steps": 1536}})
    run.agents.mkdir(parents=True, exist_ok=True)
    delivered = {"finetune_steps": 1536, "front_sha256": file_digest(run.search / "front.json")}
    (run.agents / "delivered.json").write_text(json.dumps(delivered))
    assert main([*argv[:-2], "distill", "--quiet"]) == 0
    distilled = json.loads((run.baselines / "distill_x1" / "metrics.json").read_text())
    assert distilled["baseline_budget"] == 3072 and distilled["env_steps"] == 2 * 1024
    refused = [
        (["--set", "supernet.total_steps=10"], "--set supernet.total_steps"),
        (["--seed", "5"], "baselines: "),
        (["--widths", "nan"], "--widths"),
        (["--widths", "inf"], "--widths"),
        (["--widths", "5000"], "--widths 5000: the teacher mlp-4 scaled"),  # 20,000 units
        # both named *_x0.333333: two widths trained into one folder and checkpoint
        (["--widths", "0.3333331,0.3333332"], "--widths: 0.3333331 and 0.3333332 both name"),
    ]
    for extra, words in refused:
        capsys.readouterr()
        given = argv if extra[0] != "--widths" else [*argv[:2], *argv[4:]]  # --widths once
        assert main([*given, *extra]) == 2
        err = capsys.readouterr().err
        said = ("budgets are the run's own", "drop --seed", "expected positive numbers",
                "above 16,384 (MAX_WIDTH)", "the folders *_x0.333333")  # fmt: skip
        assert words in err and any(s in err for s in said), err
    # no method at all: refused (it said which it would train, trained none and exited 0)
    assert main([*argv[:5], ",", "--quiet"]) == 2
    assert "--methods: give at least one of ppo,distill,a2d" in capsys.readouterr().err
    # an imported teacher trained nothing in the run: its ppo budget is said to be the
    # config's (it read "(the teacher's)", a number the teacher never trained for)
    capsys.readouterr()
    assert main(argv[:-1]) == 0
    assert "baselines: ppo for 512 env steps (the teacher's)" in capsys.readouterr().out
    (run.teacher_agent / "metrics.json").write_text(
        json.dumps({"source": "import-teacher (cleanrl)"})
    )
    (run.teacher / "checkpoint.pt").unlink(missing_ok=True)
    assert main(argv[:-1]) == 0
    assert (
        "baselines: ppo for 512 env steps (teacher.total_steps: the teacher was imported, so "
        "the config's budget, not its own)"
    ) in capsys.readouterr().out


def test_baselines_check_the_teacher_against_the_env_before_training(
    finished: Path, tmp_path: Path
) -> None:
    """The teacher in the run meets the env check every stage makes: one made for another
    env (a folder copied in) is an EnvError before any baseline is written."""
    import shutil

    from a2d_evo.errors import EnvError
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import load_agent, save_agent
    from a2d_evo.train.baselines import train_baselines

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    own = load_agent(run.teacher_agent)
    other = Agent(own.arch, own.obs_shape, own.n_actions, env_config={"id": "Acrobot-v1"})
    other.load_state_dict(own.state_dict())
    save_agent(other, run.teacher_agent)
    with pytest.raises(EnvError, match="made for 'Acrobot-v1'"):
        train_baselines(run.load_config(), run, widths=[1.0], methods=["ppo"], progress=False)
    assert not run.baselines.exists() or not any(run.baselines.iterdir())


def test_a_baseline_checkpoint_of_another_budget_is_trained_anew(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An interrupted baseline's checkpoint pins its budget, teacher and arch: one of another
    budget (killed while scoring at 2,048 steps; the run's budget now 1,024) is trained anew,
    with or without --resume, never continued. A checkpoint from before the pins, past the
    budget, is refused naming the file to delete (no key raises a baseline's budget)."""
    import json
    import shutil

    from test_evolve import SMALL

    import a2d_evo.train.baselines as baselines
    from a2d_evo.cli import EXIT_INTERRUPTED, main
    from a2d_evo.runs.files import torch_load, torch_save

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    argv = ["baselines", str(root), "--widths", "1", "--methods", "ppo", "--quiet"]
    checkpoint = run.baselines / ".ppo_x1.checkpoint.pt"
    metrics = run.baselines / "ppo_x1" / "metrics.json"

    def killed(*args: object, **kwargs: object) -> Path:
        raise KeyboardInterrupt("killed while scoring")

    def interrupted_at_2048() -> dict:
        _stage_config(run, "teacher", {**SMALL, "teacher": {"total_steps": 2048}})
        with monkeypatch.context() as m:
            m.setattr(baselines, "score_and_save", killed)
            assert main(argv) == EXIT_INTERRUPTED
        assert checkpoint.is_file() and not metrics.exists()
        _stage_config(run, "teacher", {**SMALL, "teacher": {"total_steps": 1024}})
        return torch_load(checkpoint)

    saved = interrupted_at_2048()
    assert saved["extra"]["baseline_budget"] == 2048 and saved["extra"]["method"] == "ppo"
    assert saved["extra"]["baseline_train_steps"] == 2048  # the steps it trains, pinned too
    assert main(argv[:-1]) == 0  # no --resume needed: nothing of it is continued
    out = capsys.readouterr().out
    assert "baseline ppo_x1: its checkpoint was trained for another budget" in out
    assert json.loads(metrics.read_text())["baseline_budget"] == 1024
    assert not checkpoint.exists()

    metrics.unlink()
    saved = interrupted_at_2048()
    pinned = ("baseline_budget", "baseline_train_steps", "teacher_sha256", "method",
              "baseline_recipe")  # fmt: skip
    for key in pinned:  # a checkpoint from before the pins
        del saved["extra"][key]
    torch_save(checkpoint, saved)
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "past the" in err and f"delete {checkpoint} to train it anew for this budget" in err
    assert "resume with a" not in err


def test_a_baseline_whose_save_was_cut_short_is_not_taken_for_finished(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """arch.json is an agent folder's commit mark: a baseline killed after its metrics.json
    but before its arch.json is done again, not skipped as trained."""
    import shutil

    from test_evolve import SMALL

    from a2d_evo.cli import main
    from a2d_evo.nets.agent_folder import load_agent

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    _stage_config(run, "teacher", {**SMALL, "teacher": {"total_steps": 1024}})
    argv = ["baselines", str(root), "--widths", "1", "--methods", "ppo"]
    assert main([*argv, "--quiet"]) == 0
    folder = run.baselines / "ppo_x1"
    (folder / "arch.json").unlink()  # as save_agent leaves a save cut short
    capsys.readouterr()
    assert main(argv) == 0
    assert "baseline ppo_x1: its save was cut short (no arch.json); training it again" in (
        capsys.readouterr().out
    )
    assert load_agent(folder).arch is not None


def test_a_baseline_trained_against_another_teacher_is_not_taken_as_finished() -> None:
    """A finished baseline is reused only with the same budget, the front's seeds and the
    same teacher (its policy.pt digest): one of a replaced teacher is trained again (ignoring
    the digest passed every test)."""
    from a2d_evo.train.baselines import _trained_for

    metrics = {"baseline_budget": 100, "env_steps": 96, "seeds": [1, 2],
               "teacher_sha256": "aaa", "baseline_recipe": "r"}  # fmt: skip
    assert _trained_for(metrics, 100, 96, [1, 2], "aaa", "r")
    assert not _trained_for(metrics, 100, 96, [1, 2], "bbb", "r")
    assert not _trained_for(metrics, 200, 96, [1, 2], "aaa", "r")
    assert not _trained_for(metrics, 100, 96, [1, 3], "aaa", "r")
    assert not _trained_for(metrics, 100, 96, [1, 2], "aaa", "other settings")
    # the same S + B split otherwise rounds to another count of updates (found by review:
    # with batch 256, S 100,000 + B 20,000 trains 468 updates, 100,296 + 19,704 trains 467)
    assert not _trained_for(metrics, 100, 128, [1, 2], "aaa", "r")
    del metrics["baseline_recipe"]  # a file from before the settings were recorded
    assert _trained_for(metrics, 100, 96, [1, 2], "aaa", "other settings")


def test_kickstart_anneals_the_a2d_baselines_only(
    finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``finetune.kickstart`` gives the ``a2d`` baselines the fine-tune's annealed loss
    (alpha and beta times ``1 - progress``), and a recipe of their own, so that ones trained
    without it are trained again; ``distill`` and ``ppo`` baselines keep theirs."""
    import json
    import shutil

    from conftest import spy_distill_coefs
    from test_evolve import SMALL

    import a2d_evo.train.learners as learners
    from a2d_evo.train.baselines import baseline_recipe

    root = tmp_path / "run"
    shutil.copytree(finished, root)
    run = RunFolder(root)
    _stage_config(run, "supernet", {**SMALL, "supernet": {"total_steps": 2048}})  # 2 updates
    cfg = run.load_config()
    cfg = replace(cfg, finetune=replace(cfg.finetune, steps=1024))  # S + B: 3 updates
    kick = replace(cfg, finetune=replace(cfg.finetune, kickstart=True))
    assert baseline_recipe(kick, "a2d") != baseline_recipe(cfg, "a2d")
    for method in ("ppo", "distill"):
        assert baseline_recipe(kick, method) == baseline_recipe(cfg, method)
    seen = spy_distill_coefs(monkeypatch, learners)
    train_baselines(kick, run, widths=[0.5], methods=["a2d"], progress=False)
    assert sorted({p for p, _ in seen}) == pytest.approx([0.0, 1 / 3, 2 / 3])  # over S + B
    d = cfg.distill
    for p, coefs in seen:
        assert coefs == pytest.approx((d.alpha * (1 - p), d.beta * (1 - p))), p
    # what the report's Reproduce line adds to `baselines` (finetune.steps: a budget, not a
    # setting; the run's is taken)
    metrics = json.loads((run.baselines / "a2d_x0.5" / "metrics.json").read_text())
    assert metrics["baseline_sets"] == ["--set finetune.kickstart=true"]


def test_baseline_sets_are_over_the_config_baselines_reads(tmp_path: Path) -> None:
    """``baselines`` starts from the search's ``config.yaml`` where there is one (as
    ``export`` does), so the flags it records are over that config (a review: they were over
    the run's, so after ``evolve --set finetune.kickstart=true``, ``baselines --set
    finetune.kickstart=false`` recorded none, and its Reproduce line trained kickstarted
    ``a2d_x``)."""
    from a2d_evo.config import dump_config
    from a2d_evo.runs.files import write_text
    from a2d_evo.train.baselines import baseline_sets

    run = RunFolder(tmp_path / "run")
    cfg = config_from_dict({})
    run.bind(cfg)
    kick = replace(cfg, finetune=replace(cfg.finetune, kickstart=True, steps=77))
    assert baseline_sets(cfg, run) == []
    assert baseline_sets(kick, run) == ["--set finetune.kickstart=true"]  # steps: a budget
    run.search.mkdir()
    write_text(run.search / "config.yaml", dump_config(kick))
    assert baseline_sets(kick, run) == []
    assert baseline_sets(cfg, run) == ["--set finetune.kickstart=false"]


def test_plain_distillation_weighs_its_terms_by_alpha_and_beta() -> None:
    """distill_x's loss is alpha x the actor term + beta x the critic term (the two swapped
    passed every test), here with alpha 2 and beta 0.25."""
    torch.manual_seed(0)
    cfg = config_from_dict({"distill": {"alpha": 2.0, "beta": 0.25}})
    teacher, student = Agent(MLPArch((32,)), (4,), 3), Agent(MLPArch((16,)), (4,), 3)
    learner = DistillOnlyLearner(student, cfg, teacher)
    zeros = torch.zeros(64)
    batch = Batch(torch.randn(64, 4), zeros.long(), zeros, zeros, zeros, zeros, None, None)
    loss, logs = learner.loss(learner.prepare(batch), 0.0)
    actor, critic = float(logs["distill_actor"]), float(logs["distill_critic"])
    assert actor > 0 and critic > 0 and actor != pytest.approx(critic, rel=0.1)
    assert float(loss.detach()) == pytest.approx(2.0 * actor + 0.25 * critic, rel=1e-6)


def test_a_delivery_s_supernet_steps_of_zero_are_not_taken(tmp_path: Path) -> None:
    """a2d_evo/train/baselines.py run_budgets: a delivery's ``supernet_steps`` is taken as
    the members' S only when it is > 0; 0 (no supernet trained) leaves the config's S,
    while its ``finetune_steps`` (512) is still taken. Mutant let through: ``had >= 0``,
    which gave the distilled baselines a budget of 0 + 512 steps."""
    from a2d_evo.config import config_from_dict
    from a2d_evo.runs.files import file_digest
    from a2d_evo.runs.folder import RunFolder
    from a2d_evo.train.baselines import run_budgets

    run = RunFolder(tmp_path / "run")
    run.search.mkdir(parents=True)
    run.agents.mkdir(parents=True)
    (run.search / "front.json").write_text("{}")
    delivered = {
        "finetune_steps": 512,
        "front_sha256": file_digest(run.search / "front.json"),
        "supernet_steps": 0,
    }
    (run.agents / "delivered.json").write_text(json.dumps(delivered))
    cfg = config_from_dict({"supernet": {"total_steps": 3072}})
    got = run_budgets(cfg, run)
    assert (got.supernet.total_steps, got.finetune.steps) == (3072, 512)


def test_a_finished_baseline_without_seeds_is_trained_again() -> None:
    """a2d_evo/train/baselines.py _trained_for: a metrics.json must record the front's final
    seeds to count as this baseline (budget, steps, teacher and recipe may be absent in older
    files, the seeds may not). Mutant let through: ``metrics.get("seeds", seeds)``, which kept
    a baseline of unknown seeds beside members scored on the front's."""
    from a2d_evo.train.baselines import _trained_for

    assert _trained_for({"seeds": [1, 2]}, 10, 10, [1, 2], "t", "r") is True
    assert _trained_for({}, 10, 10, [1, 2], "t", "r") is False


def test_scaled_widths_are_rounded_to_nearest() -> None:
    """a2d_evo/train/baselines.py scale_arch: ``w * multiplier`` rounded (Python's round, at
    least 1). 3 * 0.5 = 1.5 -> 2 (half to even), 10 * 0.5 = 5, 10 * 0.75 = 7.5 -> 8.
    Mutant let through: ``int(w * multiplier)`` (truncation: 1 and 7), a x0.5 or x0.75
    baseline narrower than the arch it names."""
    from a2d_evo.nets.space import MLPArch
    from a2d_evo.train.baselines import scale_arch

    assert scale_arch(MLPArch((3, 10)), 0.5) == MLPArch((2, 5))
    assert scale_arch(MLPArch((10,)), 0.75) == MLPArch((8,))

"""Boundaries and refusals no other test pinned (a mutation review, 2026-12-06: each test
fails under the mutation its docstring names, which passed the whole suite before): checkpoint
and format-version bounds, teacher files the import must refuse (two imported silently as
another policy), agent folders, report figures, config limits, search-state damage, the
dispatch variable and env registration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from a2d_evo.config import config_from_dict
from a2d_evo.errors import ConfigError, FormatError, TrainingError


# ----------------------------------------------------------------------------- files.py
def test_a_negative_wall_s_in_a_checkpoint_is_refused(tmp_path: Path) -> None:
    """F3: files.py read_checkpoint, ``not 0 <= wall < inf`` -> ``not wall < inf``."""
    from a2d_evo.formats import CHECKPOINT_FORMAT_VERSION
    from a2d_evo.runs.files import read_checkpoint, torch_save

    ckpt = {"format_version": CHECKPOINT_FORMAT_VERSION, "stage": "teacher", "update": 2,
            "global_step": 64, "model": {}, "optimizer": {}, "rng": {}}  # fmt: skip
    torch_save(tmp_path / "ok.pt", {**ckpt, "wall_s": 3.5})
    assert read_checkpoint(tmp_path / "ok.pt", "teacher")["wall_s"] == 3.5
    torch_save(tmp_path / "neg.pt", {**ckpt, "wall_s": -3.5})
    with pytest.raises(FormatError, match=r"'wall_s' must be a number of seconds >= 0"):
        read_checkpoint(tmp_path / "neg.pt", "teacher")


def test_a_file_one_format_version_older_is_refused() -> None:
    """F6: files.py check_format_version, ``found < expected`` -> ``found < expected - 1``
    (the suite only tried 0 against 2)."""
    from a2d_evo.runs.files import check_format_version

    for found, expected in ((1, 2), (0, 1)):
        with pytest.raises(FormatError, match="older than this a2d-evo reads"):
            check_format_version({"format_version": found}, expected, "x")


# ----------------------------------------------------------------------------- import_teacher
def test_an_import_of_exactly_max_width_is_taken() -> None:
    """I1: foreign_checkpoints._check_buildable, ``max(widths) > MAX_WIDTH`` -> ``>=``: a shared
    layer of exactly 16,384 units (documented as the widest taken) was refused."""
    from a2d_evo.config.bounds import MAX_WIDTH
    from a2d_evo.train.foreign_checkpoints import _check_buildable

    half = MAX_WIDTH // 2
    aw = [torch.empty(half, 4), torch.empty(2, half)]
    cw = [torch.empty(half, 4), torch.empty(1, half)]
    _check_buildable([], aw, cw, "t")  # 8192 + 8192 = 16384: taken
    aw[0], aw[1] = torch.empty(half + 1, 4), torch.empty(2, half + 1)
    with pytest.raises(FormatError, match="above 16,384"):
        _check_buildable([], aw, cw, "t")


def _cleanrl_state(critic_out: int = 1, critic_obs: int = 4) -> dict[str, torch.Tensor]:
    from test_teacher import CleanRLClassic, seeded

    state = seeded(CleanRLClassic(4, 2, hidden=8)).state_dict()
    if critic_out != 1:
        state["critic.4.weight"], state["critic.4.bias"] = (
            torch.zeros(critic_out, 8),
            torch.zeros(critic_out),
        )
    if critic_obs != 4:
        state["critic.0.weight"] = torch.zeros(8, critic_obs)
    return state


def test_a_critic_head_of_two_outputs_is_refused() -> None:
    """I3: foreign_checkpoints._block_diagonal, the ``cw[-1].shape[0] != 1`` check dropped: the
    import went on to a torch size-mismatch traceback."""
    from a2d_evo.train.foreign_checkpoints import convert_cleanrl

    with pytest.raises(FormatError, match="the critic head has 2 outputs, expected 1"):
        convert_cleanrl(_cleanrl_state(critic_out=2))


def test_actor_and_critic_of_other_input_sizes_are_refused() -> None:
    """I4: foreign_checkpoints._block_diagonal, the input-size check dropped: torch.cat raised a
    RuntimeError traceback."""
    from a2d_evo.train.foreign_checkpoints import convert_cleanrl

    with pytest.raises(FormatError, match="actor and critic take different input sizes"):
        convert_cleanrl(_cleanrl_state(critic_obs=5))


def test_linear_layers_without_an_activation_between_are_refused() -> None:
    """I5: foreign_checkpoints._sequential_linears, the ``indices 0, 2, 4`` check dropped: an
    ``nn.Sequential(Linear, Linear, Tanh, Linear)`` imported silently as tanh between every
    layer, another policy."""
    from a2d_evo.train.foreign_checkpoints import convert_cleanrl

    state = {}
    for net, out in (("actor", 2), ("critic", 1)):
        for i, shape in ((0, (8, 4)), (1, (8, 8)), (3, (out, 8))):
            state[f"{net}.{i}.weight"], state[f"{net}.{i}.bias"] = (
                torch.zeros(shape), torch.zeros(shape[0]))  # fmt: skip
    with pytest.raises(FormatError, match=r"layers at \[0, 1, 3\]; expected Linear layers"):
        convert_cleanrl(state)


def test_a_cnn_of_other_channels_does_not_fit_the_env() -> None:
    """I7: import_teacher.check_converted_fits_env, ``got_c != obs_shape[0]`` dropped: 4-channel
    weights on a 3-channel env passed, and the Agent's load then raised a torch traceback."""
    from test_teacher import CleanRLAtari, seeded

    from a2d_evo.train.foreign_checkpoints import convert_cleanrl
    from a2d_evo.train.import_teacher import check_converted_fits_env

    arch, state = convert_cleanrl(seeded(CleanRLAtari(6)).state_dict())
    with pytest.raises(TrainingError, match="takes 4-channel frames"):
        check_converted_fits_env(arch, state, (3, 84, 84), 6, "X-v0", Path("x"))


def test_sb3_normalize_images_false_is_refused() -> None:
    """I9: foreign_checkpoints.convert_sb3, the ``normalize_images is False`` check dropped: a
    CnnPolicy trained on unscaled pixels imported with our 1/255 scale, silently."""
    from test_teacher import SB3Cnn, seeded

    from a2d_evo.train.foreign_checkpoints import convert_sb3

    state = seeded(SB3Cnn(4)).state_dict()
    with pytest.raises(FormatError, match="normalize_images=False"):
        convert_sb3(state, {"policy_kwargs": {"normalize_images": False}})
    convert_sb3(state, {"policy_kwargs": {"normalize_images": True}})


def test_a_conv_of_another_kernel_is_refused() -> None:
    """I11: foreign_checkpoints._nature, the kernel-size check dropped: a 7x7 first conv (same
    7x7 map, same FC) reached the Agent's load_state_dict, a torch traceback."""
    from test_teacher import CleanRLAtari, seeded

    from a2d_evo.train.foreign_checkpoints import convert_cleanrl

    net = CleanRLAtari(6)
    net.network[0] = nn.Conv2d(4, 32, 7, stride=4)
    with pytest.raises(FormatError, match=r"conv 1 has kernel \(7, 7\), the Nature CNN's is 8x8"):
        convert_cleanrl(seeded(net).state_dict())


# ----------------------------------------------------------------------------- agent_folder
def test_an_agent_folder_of_zero_actions_is_refused(tmp_path: Path) -> None:
    """A5: agent_folder._pos_int, ``1 <= value`` -> ``0 <= value``: arch.json n_actions 0,
    with a matching empty head in policy.pt, loaded as an agent with no actions."""
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.agent_folder import load_agent, save_agent
    from a2d_evo.nets.space import MLPArch

    folder = save_agent(
        Agent(MLPArch((8,)), (4,), 2, {"id": "CartPole-v1"}), tmp_path / "agent", onnx=False
    )
    meta = json.loads((folder / "arch.json").read_text())
    meta["n_actions"] = 0
    (folder / "arch.json").write_text(json.dumps(meta))
    state = torch.load(folder / "policy.pt", weights_only=True)
    state["policy.weight"], state["policy.bias"] = torch.zeros(0, 8), torch.zeros(0)
    torch.save(state, folder / "policy.pt")
    with pytest.raises(FormatError, match="n_actions must be a positive int, got 0"):
        load_agent(folder)


# ----------------------------------------------------------------------------- report
def test_a_delivered_member_rescored_on_other_seeds_is_not_delivered(tmp_path: Path) -> None:
    """R2: delivered_file._check_unchanged, the seeds comparison dropped: a member fine-tuned by
    hand and scored on other seeds to the same mean (CartPole's 500.0) stayed "delivered"."""
    from test_report import _agent, _metrics, _norm, make_run

    from a2d_evo.formats import KEPT_INHERITED
    from a2d_evo.report import run_data
    from a2d_evo.runs.files import file_digest, write_json

    run = make_run(tmp_path / "run", baselines=False)
    current = file_digest(run.search / "front.json")
    members = {"front_00": (500, 300.0), "front_01": (1000, 450.0)}
    exported = []
    for name, (flops, ret) in members.items():
        _agent(run.agents / name, (4,), {**_metrics(flops, ret, 5.0, 17),
                                         "episode_returns": [ret] * 17,
                                         "sources": {"front": current}})  # fmt: skip
        exported.append({"agent": name, "flops": flops, "return_mean": ret, "return_std": 5.0,
                         "episodes": 17, "normalised_return": _norm(ret),
                         "inherited_return_mean": ret, "kept": KEPT_INHERITED})  # fmt: skip
    delivered = {"format_version": 1, "finetune_steps": 4096, "members": list(members),
                 "exported": exported, "front_sha256": current,
                 "seeds": list(range(1000, 1017))}  # fmt: skip
    write_json(run.agents / "delivered.json", delivered)
    assert run_data.load_run(run.load_config(), run).delivered == ["front_00", "front_01"]
    later = {**_metrics(1000, 450.0, 5.0, 17), "seeds": list(range(5000, 5017)),
             "episode_returns": [450.0] * 17, "sources": {"front": current}}  # fmt: skip
    write_json(run.agents / "front_01" / "metrics.json", later)
    data = run_data.load_run(run.load_config(), run)
    assert data.delivered == []
    assert any("front_01 was changed after it was delivered" in m for m in data.missing)


def test_reproduce_runs_a_stage_trained_on_several_ranks_under_torchrun() -> None:
    """K1: reproduce._on_ranks, ``max(sizes) == 1`` -> ``sizes[0] == 1``: a supernet started
    on 1 process and resumed on 2 was reproduced as one plain single-process command."""
    from a2d_evo.report.reproduce import _on_ranks

    line = "a2d-evo train-supernet --config c.yaml --out o"
    assert _on_ranks(line, {}) == line
    assert _on_ranks(line, {"world_sizes": [[0, 1]]}) == line
    two = _on_ranks(line, {"world_sizes": [[0, 2]]})
    assert (
        two == "torchrun --standalone --nproc-per-node 2 -m a2d_evo train-supernet "
        "--config c.yaml --out o"
    )
    mixed = _on_ranks(line, {"world_sizes": [[0, 1], [2, 2]]})
    assert mixed.startswith("torchrun --standalone --nproc-per-node 1 -m a2d_evo train-supernet")
    assert mixed.endswith(
        "# trained on 1 then 2 processes, resumed at each change (docs/distributed.md)"
    )


def test_a_delivered_row_without_kept_says_which_weights_from_its_budget() -> None:
    """K2: tables.delivered_table, the default of a row without ``kept`` (files before it)
    swapped: a fine-tuned member read 'inherited'."""
    from a2d_evo.report.tables import delivered_table

    row = {"agent": "a", "flops": 10, "return_mean": 5.0, "return_std": 1.0, "episodes": 10,
           "normalised_return": 0.5, "inherited_return_mean": 4.0}  # fmt: skip
    tuned = delivered_table({"members": ["a"], "exported": [{**row, "finetune_steps": 64}]})
    assert tuned.splitlines()[-1].endswith("| fine-tuned |")
    plain = delivered_table({"members": ["a"], "exported": [row]})
    assert plain.splitlines()[-1].endswith("| inherited |")


def test_told_apart_spans_max_minus_min_whatever_the_order() -> None:
    """K9: tables.told_apart, span ``max(norm) - min(norm)`` -> ``max(norm) - norm[0]``
    (the suite's members were in increasing order, so the first was the minimum)."""
    from a2d_evo.report.tables import told_apart

    line = told_apart([("a", 450.0, 1.0, 0.9), ("b", 300.0, 1.0, 0.5), ("c", 500.0, 1.0, 1.0)])
    assert line.endswith(
        "the 3 members' normalised returns span 0.500; 3 or more told apart span up to 0.500."
    )


# ----------------------------------------------------------------------------- config
def test_a_float_key_given_a_huge_int_is_a_config_error(tmp_path: Path) -> None:
    """C4: convert._convert, the int64 range check of a float field dropped: float(10**400)
    raised OverflowError, a traceback for a config typo."""
    from a2d_evo.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("env:\n  id: CartPole-v1\nppo:\n  lr: 1" + "0" * 400 + "\n")
    with pytest.raises(ConfigError, match="ppo.lr: expected a finite float, got an int out of"):
        load_config(path)


def test_config_limits_at_their_documented_bounds() -> None:
    """C3, C6, C11: yaml_dialect MAX_DEPTH (32 levels), schema MAX_IMPORTS (16) and teacher.arch's
    MAX_WIDTH (16384, "at most"): each taken at the bound and refused one past it."""
    from a2d_evo.config.yaml_dialect import MAX_DEPTH, check_size

    def nested(levels: int) -> dict:
        d: dict = {}
        for _ in range(levels):
            d = {"k": d}
        return d

    check_size(nested(MAX_DEPTH), "x")
    with pytest.raises(ConfigError, match="nested deeper than 32"):
        check_size(nested(MAX_DEPTH + 1), "x")
    base = {"env": {"id": "CartPole-v1"}}
    imports = [f"m{i}" for i in range(17)]
    config_from_dict({"env": {**base["env"], "imports": imports[:16]}})
    with pytest.raises(ConfigError, match="env.imports: at most 16 entries, got 17"):
        config_from_dict({"env": {**base["env"], "imports": imports}})
    config_from_dict({**base, "teacher": {"arch": {"kind": "mlp", "widths": [16384]}}})
    with pytest.raises(ConfigError, match="at most 16384 units"):
        config_from_dict({**base, "teacher": {"arch": {"kind": "mlp", "widths": [16385]}}})


# ----------------------------------------------------------------------------- search state
def _state_copy(finished: Path, tmp_path: Path) -> Path:
    root = tmp_path / "run"
    shutil.copytree(finished, root)
    return root / "search"


def test_a_state_whose_env_steps_go_back_is_refused(finished: Path, tmp_path: Path) -> None:
    """S4: saved_state._hv_history, the never-decreasing steps/episodes check dropped: an edited
    state.json whose hypervolume rows spend fewer steps later was resumed, and the budget
    counted from it."""
    from a2d_evo.search.saved_state import load_state

    search = _state_copy(finished, tmp_path)
    data = json.loads((search / "state.json").read_text())
    assert load_state(search) is not None
    data["hypervolume"][1][3] = data["hypervolume"][0][3] - 1
    (search / "state.json").write_text(json.dumps(data))
    with pytest.raises(FormatError, match="steps and episodes never decreasing"):
        load_state(search)


def test_a_state_whose_rng_words_are_out_of_range_is_refused(
    finished: Path, tmp_path: Path
) -> None:
    """S5: saved_state._check_arrays, the PCG64 ``has_uint32 <= 1`` and ``uinteger < 2**32`` checks
    dropped: a damaged generator state was accepted."""
    import io

    from a2d_evo.search.saved_state import load_state

    search = _state_copy(finished, tmp_path)
    for word, value in ((4, 7), (5, 1 << 40)):
        with np.load(search / "state.npz") as z:
            arrays = {k: z[k].copy() for k in z.files}
        arrays["rng"][word] = np.uint64(value)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        bad = tmp_path / f"bad{word}"
        shutil.copytree(search, bad)
        (bad / "state.npz").write_bytes(buf.getvalue())
        with pytest.raises(FormatError, match="rng is not a PCG64 generator state"):
            load_state(bad)


# ----------------------------------------------------------------------------- ops, envs
def test_reference_ops_variable_is_read_case_insensitively(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D3: dispatch._env_true, ``.lower()`` dropped: A2D_EVO_REFERENCE_OPS=True (documented
    true values, any case) silently kept the native kernels."""
    from a2d_evo.ops.dispatch import REFERENCE_ENV_VAR, reference_forced

    for value in ("TRUE", "Yes", " On "):
        monkeypatch.setenv(REFERENCE_ENV_VAR, value)
        assert reference_forced(), value


def test_a_registration_function_runs_once_per_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """M3: imports.run_imports, ``_done.add(spec)`` dropped: every env built called the
    registration function again (gymnasium warned on each re-registered id)."""
    from a2d_evo.envs import imports

    module = "CALLS = []\ndef register():\n    CALLS.append(1)\n"
    (tmp_path / "zz_counting_mod.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(imports, "_done", set())
    imports.run_imports(["zz_counting_mod:register"])
    imports.run_imports(["zz_counting_mod:register"])
    import zz_counting_mod  # type: ignore[import-not-found]

    assert zz_counting_mod.CALLS == [1]

"""The delivery of a front (a2d_evo.search.front): candidates from the whole archive, the
successive-halving race on fresh seeds, by hand."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from a2d_evo.evaluation.episodes import EvalResult, make_result
from a2d_evo.evaluation.seeds import halving_seeds
from a2d_evo.formats import Normalisation
from a2d_evo.nets.space import MLPArch
from a2d_evo.search.front import candidates, successive_halving

ARCHS = [MLPArch((w,)) for w in (4, 8, 12, 16)]
FLOPS = [100.0, 200.0, 300.0, 400.0]
TRUE = {4: 1.0, 8: 5.0, 12: 3.0, 16: 6.0}  # 12 is dominated by 8 (cheaper, better)


class Noisy:
    """Returns ``TRUE[width] + (seed % 5 - 2) / 10`` and length ``10 + seed % 3``; logs calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], int, list[int]]] = []

    def evaluate(self, archs: Sequence[MLPArch], episodes: int, seeds: list[int]) -> Any:
        self.calls.append(([a.widths[0] for a in archs], episodes, list(seeds)))
        out: list[EvalResult] = []
        for a in archs:
            rets = [TRUE[a.widths[0]] + (s % 5 - 2) / 10 for s in seeds[:episodes]]
            out.append(make_result(rets, seeds[:episodes], [10 + s % 3 for s in seeds[:episodes]]))
        return out


def test_successive_halving_by_hand() -> None:
    ev = Noisy()
    race = successive_halving(ev, ARCHS, FLOPS, seed=5, episodes=2, max_episodes=3, max_slots=64)
    # round 0: all 4 on 2 fresh seeds; 12 is dominated, the first front (4, 8, 16) is at least
    # half: it goes on. Round 1: 3 archs on min(2 * 2, 3) = 3 seeds, all non-dominated: stop.
    assert [c[0] for c in ev.calls] == [[4, 8, 12, 16], [4, 8, 16]]
    assert ev.calls[0][2] == halving_seeds(5, 0, 2) and ev.calls[1][2] == halving_seeds(5, 1, 3)
    assert race.survivors == [0, 1, 3]
    steps0 = 4 * sum(10 + s % 3 for s in halving_seeds(5, 0, 2))
    steps1 = 3 * sum(10 + s % 3 for s in halving_seeds(5, 1, 3))
    assert race.rounds == [
        {"candidates": 4, "episodes": 2, "env_steps": steps0},
        {"candidates": 3, "episodes": 3, "env_steps": steps1},
    ]
    # a survivor's mean is over every episode it played, both rounds (the last round's alone
    # made a member look below random, and dropped it, on a short last block)
    noise = np.mean([(s % 5 - 2) / 10 for s in halving_seeds(5, 0, 2) + halving_seeds(5, 1, 3)])
    assert race.means == pytest.approx([TRUE[w] + noise for w in (4, 8, 16)])


def test_halving_keeps_the_larger_half_of_an_odd_count() -> None:
    """Five candidates: the first front (4, 8) is under half of five, so the next front (12,
    24) goes on too, ceil(5 / 2) = 3 at least; with floor the race kept two and stopped."""
    true = {4: 1.0, 8: 5.0, 12: 3.0, 20: 0.5, 24: 4.0}
    calls: list[list[int]] = []

    class Exact:
        def evaluate(self, archs: Sequence[MLPArch], episodes: int, seeds: list[int]) -> Any:
            calls.append([a.widths[0] for a in archs])
            return [make_result([true[a.widths[0]]] * episodes, seeds[:episodes], [10] * episodes)
                    for a in archs]  # fmt: skip

    archs = [MLPArch((w,)) for w in true]
    flops = [100.0, 200.0, 300.0, 400.0, 500.0]
    race = successive_halving(Exact(), archs, flops, seed=3, episodes=2, max_episodes=8,
                              max_slots=64)  # fmt: skip
    assert calls == [[4, 8, 12, 20, 24], [4, 8, 12, 24], [4, 8]]
    assert [r["episodes"] for r in race.rounds] == [2, 4, 8] and race.survivors == [0, 1]


def test_halving_ranks_on_its_own_episodes_not_on_the_search_estimate() -> None:
    """Candidates come in on their search-time means: a lucky estimate (12 at 7.0, really 3.0)
    puts 12 on the first front; the race re-measures every candidate on fresh seeds and 12,
    dominated by 8 there, is not delivered."""
    norm = Normalisation(0.0, 10.0, 100)
    records = [
        {"encoding": [1, w], "flops": f, "order": i, "return_mean": r}
        for i, (w, f, r) in enumerate(zip((4, 8, 12, 16), FLOPS, (1.0, 5.0, 7.0, 9.0), strict=True))
    ]
    picked = candidates(records, norm, count=1)
    assert [r["encoding"][1] for r in picked] == [4, 8, 12, 16]  # all on the first front
    archs = [MLPArch((r["encoding"][1],)) for r in picked]
    race = successive_halving(
        Noisy(), archs, [r["flops"] for r in picked], seed=1, episodes=2, max_episodes=30,
        max_slots=64,
    )  # fmt: skip
    assert [picked[i]["encoding"][1] for i in race.survivors] == [4, 8, 16]


def test_candidates_take_whole_fronts_until_count() -> None:
    norm = Normalisation(0.0, 10.0, 100)
    # front 1: (a 5.0 @ 100), (b 8.0 @ 300); front 2: (c 4.0 @ 200), (d 7.0 @ 400); front 3: e
    rows = [("a", 100, 5.0), ("b", 300, 8.0), ("c", 200, 4.0), ("d", 400, 7.0), ("e", 500, 1.0)]
    records = [
        {"encoding": [i], "flops": f, "order": i, "return_mean": r, "name": n}
        for i, (n, f, r) in enumerate(rows)
    ]
    assert [r["name"] for r in candidates(records, norm, count=1)] == ["a", "b"]
    assert [r["name"] for r in candidates(records, norm, count=3)] == ["a", "c", "b", "d"]
    assert [r["name"] for r in candidates(records, norm, count=3, max_flops=250)] == ["a", "c"]
    # an arch exactly at max_flops is feasible, as in the search (G <= 0)
    assert [r["name"] for r in candidates(records, norm, count=3, max_flops=200)] == ["a", "c"]
    # nothing feasible: the least violating (the cheapest) alone
    assert [r["name"] for r in candidates(records, norm, count=3, max_flops=50)] == ["a"]
    with pytest.raises(ValueError, match="nothing was evaluated"):
        candidates([], norm, count=3)
    # ranked on the search's estimates when given (search.estimate): c's estimate 6.0 puts it
    # on the first front, between a and b
    estimates = [4.5, 8.0, 6.0, 7.0, 1.0]
    assert [r["name"] for r in candidates(records, norm, 1, returns=estimates)] == ["a", "c", "b"]
    assert [r["name"] for r in candidates(records, norm, 1, max_flops=250)] == ["a"]
    assert [r["name"] for r in candidates(records, norm, 1, max_flops=250, returns=estimates)] == [
        "a",
        "c",
    ]


class Split:
    """``100 + 10 * TRUE[width]`` on every seed (all above the random policy's ~20), except
    the widths in ``race`` / ``final``, which play the given return on the race's seeds / on
    the final seeds."""

    def __init__(
        self, final_seeds: list[int], race: dict[int, float], final: dict[int, float]
    ) -> None:
        self.final_seeds, self.race, self.final = set(final_seeds), race, final

    def evaluate(self, archs: Sequence[MLPArch], episodes: int, seeds: list[int]) -> Any:
        out = []
        for a in archs:
            w = a.widths[0]
            rets = []
            for s in seeds[:episodes]:
                special = self.final if s in self.final_seeds else self.race
                rets.append(special.get(w, 100.0 + 10.0 * TRUE[w]))
            out.append(make_result(rets, seeds[:episodes], [10] * len(rets)))
        return out


def _write_front(
    tmp_path: Path, race: dict[int, float], final: dict[int, float], below_random: int = 0
) -> Any:
    """``front.json`` of the four one-layer archs of ``ARCHS`` raced and re-scored by
    :class:`Split` (a real CartPole teacher and random policy give R_teacher, R_random),
    with ``finetune.below_random`` set to ``below_random``."""
    import torch
    from conftest import balance_cartpole

    from a2d_evo.config import config_from_dict
    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.nets.agent import Agent
    from a2d_evo.nets.space import SearchSpace
    from a2d_evo.nets.supernet import Supernet
    from a2d_evo.search.front import SearchSummary, write_front

    cfg = config_from_dict(
        {
            "seed": 7,
            "env": {"id": "CartPole-v1"},
            "space": {"kind": "mlp", "depths": [1], "widths": [4, 8, 12, 16]},
            "search": {"pop": 4, "episodes": 2, "final_episodes": 4, "candidates": 4},
            "eval": {"num_envs": 2, "episodes": 2},
            "finetune": {"below_random": below_random},
        }
    )
    space = SearchSpace(cfg.space)
    torch.manual_seed(0)
    supernet = Supernet(space, (4,), 2)
    teacher = balance_cartpole(Agent(MLPArch((16,)), (4,), 2, {"id": "CartPole-v1"}))
    records = [
        {"encoding": [int(g) for g in space.encode(a)], "flops": f, "order": i, "episodes": 2,
         "return_mean": 100.0 + 10.0 * TRUE[a.widths[0]]}
        for i, (a, f) in enumerate(zip(ARCHS, FLOPS, strict=True))
    ]  # fmt: skip
    records[2]["return_mean"] = 500.0  # 12 enters on a lucky search estimate
    norm = Normalisation(0.0, 200.0, 400)
    path = write_front(
        tmp_path, cfg, records, supernet=supernet, teacher=teacher, teacher_flops=400,
        evaluator=Split(final_seeds(cfg.seed, 4), race, final), norm_search=norm,
        ref=np.array([0.0, 3.0]), summary=SearchSummary(1, "gens", 80, 8),
    )  # fmt: skip
    return json.loads(path.read_text())


def widths_of(data: Any) -> list[int]:
    return sorted(m["arch"]["widths"][0] for m in data["front"])


def test_write_front_delivers_only_the_race_survivors(tmp_path: Path) -> None:
    """The final re-scoring plays the race's survivors, never every candidate: width 12, which
    loses the race and would top the final seeds, is not delivered (front_size counts the
    survivors)."""
    data = _write_front(tmp_path, race={12: 0.0}, final={12: 900.0})
    assert widths_of(data) == [4, 8, 16]
    # chosen on the search's estimates: the mean of the records under search.estimate "mean"
    assert all(m["search_estimate"] == m["search_return_mean"] for m in data["front"])
    assert data["search"]["front_size"] == 3
    assert data["delivery"]["candidates"] == 4
    assert data["delivery"]["final_episodes"] == 3 * 4
    # finetune.below_random 0 (the default): none scored, none listed
    assert data["below_random"] == [] and data["delivery"]["below_random_episodes"] == 0


def test_the_final_seeds_score_the_members_and_choose_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Membership is decided on the race's episodes: width 4, below the random policy there
    (10 against ~20), is dropped although it would top the final seeds; width 16, which
    looks dominated on the final seeds (0), is kept with that figure, not filtered on the
    episodes that score it. The random policy the race is judged against plays the race's
    own seeds, block by block."""
    from a2d_evo.evaluation.seeds import final_seeds
    from a2d_evo.search import front

    played: list[tuple[int, int]] = []
    real = front.random_policy_return

    def random_policy(cfg: Any, episodes: int, seed: int, **kw: Any) -> Any:
        played.append((episodes, seed))
        return real(cfg, episodes, seed, **kw)

    monkeypatch.setattr(front, "random_policy_return", random_policy)
    data = _write_front(tmp_path, race={4: 10.0}, final={4: 900.0, 16: 0.0}, below_random=1)
    blocks = [halving_seeds(7, r, rd["episodes"])
              for r, rd in enumerate(data["delivery"]["halving_rounds"])]  # fmt: skip
    assert played == [(len(b), b[0]) for b in blocks] + [(4, final_seeds(7, 4)[0])]
    assert widths_of(data) == [8, 16]
    assert data["search"]["dropped_below_random"] == 1
    assert data["search"]["none_beat_random"] is False
    assert data["search"]["dominated_on_final_seeds"] == 1
    by_width = {m["arch"]["widths"][0]: m for m in data["front"]}
    assert by_width[16]["return_mean"] == 0.0 and by_width[8]["return_mean"] == 150.0
    assert 8.0 <= data["delivery"]["halving_random_return"] <= 60.0  # CartPole's ~22
    # width 4 is listed apart, scored on the final seeds too (for finetune.below_random): its
    # 900 there neither makes it a member nor moves the hypervolume
    assert [m["arch"]["widths"] for m in data["below_random"]] == [[4]]
    assert data["below_random"][0]["return_mean"] == 900.0
    from a2d_evo.search.problem import hypervolume

    F = np.array([[-m["normalised_return"], m["flops"]] for m in data["front"]])
    assert data["hypervolume"] == hypervolume(F, np.array(data["reference_point"]))
    assert data["delivery"]["final_episodes"] == 2 * 4  # the members'
    assert data["delivery"]["below_random_episodes"] == 4
    assert data["delivery"]["below_random_env_steps"] > 0


def test_a_race_no_candidate_won_against_random_keeps_its_best_and_says_so(
    tmp_path: Path,
) -> None:
    """Every raced candidate below the random policy (~20 on CartPole): the best is kept
    alone, so the front is not empty, and front.json records that none beat random (the
    report then says so; it counted "0 more dropped" where the one candidate was below)."""
    data = _write_front(tmp_path, race={4: 1.0, 8: 2.0, 12: 3.0, 16: 5.0}, final={}, below_random=2)
    assert widths_of(data) == [16]
    assert data["search"]["none_beat_random"] is True
    assert data["search"]["dropped_below_random"] == 3  # of the race's last 4
    # the costliest finetune.below_random (2) of the three dropped, costliest first
    assert [m["arch"]["widths"][0] for m in data["below_random"]] == [12, 8]
    assert data["delivery"]["halving_rounds"][-1]["candidates"] == 4


def test_the_teacher_s_margin_is_its_lead_over_random(monkeypatch: pytest.MonkeyPatch) -> None:
    """``reference_returns``'s margin is the 95% lower bound of teacher minus random, paired
    per seed: positive for a teacher clearly ahead (what the weak-teacher caution reads)."""
    from types import SimpleNamespace

    from a2d_evo.search import front
    from a2d_evo.stats import paired_lower95

    teach, rand = [10.0, 12.0, 11.0, 13.0], [1.0, 2.0, 3.0, 1.5]
    monkeypatch.setattr(front, "evaluate_agent", lambda *a, **k: SimpleNamespace(returns=teach))
    monkeypatch.setattr(front, "_random_episodes", lambda *a, **k: rand)
    refs = front.reference_returns(None, None, [[5, 6, 7, 8]], None)  # type: ignore[arg-type]
    assert (refs.r_random, refs.r_teacher) == (1.875, 11.5)
    assert refs.margin_lower95 == pytest.approx(paired_lower95(teach, rand))
    assert refs.margin_lower95 > 5.0

"""The report of a run: Pareto plot, hypervolume plot, and ``report.md``.

``write_report(cfg, run)`` reads the run folder with :func:`a2d_evo.report.run_data.load_run` and
writes ``RUN_DIR/report/``: the tables (:mod:`~a2d_evo.report.tables`), the dominance verdicts
(:mod:`~a2d_evo.report.verdicts`), the commands that reproduce the run
(:mod:`~a2d_evo.report.reproduce`) and the figures (:mod:`~a2d_evo.report.plots`). Only the
finished search is required; every other part that is missing is named in the report, and the
rest renders.

Intervals are those of ``a2d-evo eval``: ``mean +- t * s / sqrt(n)``, ``t`` Student's
two-sided 95% quantile with ``n - 1`` degrees of freedom (:func:`~a2d_evo.stats.t95`) and
``s`` the sample standard deviation (ddof = 1) over the ``n`` episodes; ``metrics.json``
records the population one (ddof = 0), so ``s = std * sqrt(n / (n - 1))``.
A baseline is *dominated* when some front member has at most its FLOPs and at least its
normalised return, strictly better in one (point estimates; the report prints the return
margin with its interval so a reader can judge the noise). The second verdict is paired
(:func:`~a2d_evo.report.verdicts.paired_dominance`): a member with at most the baseline's
FLOPs, scored on the same seeds, whose per-episode difference in normalised return has a 95%
lower bound above ``-NONINFERIORITY_MARGIN`` (issue [J]'s rule).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from a2d_evo.config import Config
from a2d_evo.formats import KEPT_INHERITED, VALIDATION_SEEDS, count_text, weak_teacher_caution
from a2d_evo.report.plots import (
    baseline_marks,
    episodes_text,
    hypervolume_png,
    pareto_png,
    seeds_text,
)
from a2d_evo.report.reproduce import exported_names, reproduce_commands, stage_config
from a2d_evo.report.rows import Row, finite_or_none
from a2d_evo.report.run_data import RunData, load_run
from a2d_evo.report.tables import (
    fraction_text,
    markdown_table,
    optional_text,
    random_guard_sentence,
    told_apart,
)
from a2d_evo.report.verdicts import below_threshold, dominance, paired_dominance
from a2d_evo.runs.files import write_bytes, write_text
from a2d_evo.runs.folder import RunFolder
from a2d_evo.runs.locks import writes
from a2d_evo.search.problem import rescoring_rule
from a2d_evo.stats import NONINFERIORITY_MARGIN


def _chosen_on_sentence(data: RunData) -> str:
    """Which seeds chose the delivered members, and what that means for their figures."""
    if data.delivered_chosen_on == VALIDATION_SEEDS:
        return (
            "The members are chosen on the fine-tune's validation seeds and scored on the "
            "final seeds, which did not choose them."
        )
    fresh = "`benchmarks/pipeline_compare.py` re-scores them on fresh ones"
    if data.delivered_validated:  # export --min-return: a filter on the final seeds first
        return (
            "The members are filtered on the final seeds that score them (`export "
            "--min-return`), then chosen on the fine-tune's validation seeds: a slight "
            f"optimism; {fresh}."
        )
    return (
        "The members are chosen and scored on the same final seeds (no validation ran: a "
        f"slight optimism; {fresh})."
    )


def _finetune_cell(data: RunData, name: str) -> str:
    """An exported agent's fine-tune: ``before → after`` (on seeds of its own where they are
    not the row's), and whether its inherited weights ship (the validation rejected the
    fine-tune, or none ran); an agent that export gave a fine-tune budget but that has none
    recorded was left by an interrupted export."""
    cell = " → ".join(f"{v:.2f}" for v in data.finetune.get(name, ()))
    if name in data.finetune_seeds:  # a fine-tune by hand: not the row's seeds
        cell += f" (on its own {count_text(data.finetune_seeds[name], 'seed')})"
    if data.kept.get(name) != KEPT_INHERITED:
        return cell
    if not cell and data.export_finetune.get(name, 0) > 0 and name not in data.finetune_budget:
        return "fine-tune pending (export stopped before it: run `a2d-evo export` again)"
    return f"{cell} (inherited weights kept)" if cell else "inherited weights kept"


def _inherited_budget_note(cfg: Config, run: RunFolder, data: RunData, rows: list[Row]) -> str:
    """Without a delivered front the baselines face the front's inherited weights, which had
    the supernet's steps alone: name the baselines trained for more ("" when none was, or
    when the fine-tuned front is the one compared)."""
    if data.delivered:
        return ""
    steps = stage_config(run, "supernet", cfg)[0].supernet.total_steps
    more = [
        f"`{r.label}`"
        for r in rows
        if isinstance(r.extra.get("env_steps"), int) and r.extra["env_steps"] > steps
        and r.extra.get("method") != "ppo"
    ]  # fmt: skip
    if not more:
        return ""
    return (
        f" The front's rows here are its inherited weights: the supernet's {steps:,} env steps "
        f"(shared) and no fine-tune of their own; {', '.join(more)} trained for more, so these "
        "verdicts give "
        f"the baselines the larger budget (`a2d-evo export {run.quoted}` delivers the fine-tuned "
        "front they are budgeted against)."
    )


def _two_teacher_returns(data: RunData) -> str:
    """Why the teacher has two returns: its own evaluation and R_teacher."""
    own = data.teacher
    if own is None:
        return ""
    rescored = f"{count_text(data.front_episodes[-1], 'episode')}, " if data.front_episodes else ""
    return (
        f"The row above is the teacher's own evaluation, made when it was trained or imported "
        f"(`teacher/agent/metrics.json`: {count_text(own.episodes, 'episode')}, "
        "`eval.episodes` unless `teacher.eval_episodes` is set, on seeds of its own); "
        "R_teacher is the same teacher replayed on the front's re-scoring seeds "
        f"({rescored}`search.final_episodes`), so "
        "that every normalised return compares agents on the same episodes. The two means "
        "differ only through those seeds and episode counts."
    )


def _settings(searched: Config, data: RunData) -> list[str]:
    """Bullet lines: what the search ran (``front.json``'s ``search`` block first, then the
    search stage's own config)."""
    search = searched.search
    ran = data.search
    final = data.front_episodes[-1] if data.front_episodes else search.final_episodes
    units = data.reference_units
    ref = f"`{json.dumps(data.reference_point)}`"
    if isinstance(units, list):
        ref += " in (" + ", ".join(map(str, units)) + ")"
    played = ran.get("generations")
    gens = f"{search.gens} generations"
    if isinstance(played, int) and played != search.gens:  # a budget or the space stopped it
        gens = f"at most {search.gens} generations ({played} played)"
    evaluated = ran.get("evaluations", len(data.history))
    if evaluated != len(data.history) and data.history:  # archs played past a budget
        evaluated = (
            f"{evaluated} within the budget ({len(data.history)} played; the Pareto plot "
            "shows every one)"
        )
    lines = [
        f"- population {ran.get('pop', search.pop)}, {gens}, "
        f"{ran.get('episodes', search.episodes)} episodes per candidate (the same seeds for "
        f"every candidate of a generation); the final front re-scored with {final} episodes",
        f"- root seed {searched.seed}; re-scoring seeds {seeds_text(data.front_seeds)}",
        f"- candidates evaluated: {evaluated}",
        f"- hypervolume reference point {ref}",
    ]
    if "env_steps" in ran:
        how = rescoring_rule(ran.get("reevaluate"), ran.get("reevaluate_ranks"))
        if "init" in ran:
            how += f"; first population {ran['init']}, {ran.get('mutation', '?')} mutation"
        if ran.get("estimate", "mean") != "mean":
            how += f"; ranked on {ran['estimate']} estimates"
        lines.append(
            f"- spent {ran['env_steps']:,} env steps in {ran.get('episodes_played', 0):,} "
            f"episodes over {ran.get('generations', '?')} generations (stopped by "
            f"{ran.get('stopped_by', '?')}; {how})"
        )
        played = {  # a shared front.json may hold anything there: counts, or "?"
            k: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "?"
            for k, v in data.delivery.items()
        }
        if all(played.get(k, "?") != "?" for k in ("halving_env_steps", "final_env_steps")):
            rounds = data.delivery.get("halving_rounds")
            raced = count_text(len(rounds), "round") if isinstance(rounds, list) else "? rounds"
            below = played.get("below_random_env_steps", "0")
            lines.append(
                f"- then the delivery, outside that count and the same for every method: "
                f"{played['halving_env_steps']} env steps in "
                f"{played.get('halving_episodes', '?')} episodes racing "
                f"{played.get('candidates', '?')} candidates by successive halving "
                f"({raced}), and {played['final_env_steps']} in "
                f"{played.get('final_episodes', '?')} re-scoring the front on the final seeds"
                + (f" (and {below} for its below-random archs)" if below != "0" else "")
            )
        if ran.get("discarded_episodes"):
            lines.append(
                f"- the last generation crossed the {ran.get('budget_steps', 0):,}-step budget: "
                f"its {ran['discarded_episodes']:,} episodes ({ran['discarded_env_steps']:,} env "
                "steps) past the budget were played but not used to choose the front"
            )
    if ran.get("none_beat_random"):  # the best of a race no candidate won against random
        raced = count_text(int(ran.get("dropped_below_random", 0)) + 1, "finalist")
        lines.append(
            f"- final front: 1 member from the search's race, where none of its {raced} (the "
            "race's non-dominated survivors) beat the random policy: the best is kept alone so "
            "that the front is not empty, and no agent of this search is better than random there"
        )
    elif "dominated_on_final_seeds" in ran:  # members chosen on the race's episodes
        looks = int(ran["dominated_on_final_seeds"])
        lines.append(
            f"- final front: {count_text(ran['front_size'], 'member')} from the search's race, "
            f"{ran.get('dropped_below_random', 0)} more dropped there as no better than the "
            f"random policy; {looks} {'looks' if looks == 1 else 'look'} dominated on the "
            f"final seeds and {'is' if looks == 1 else 'are'} kept (those seeds score the "
            "members, they do not choose them)"
        )
    elif "front_size" in ran:  # a front.json written before 2026-12-05
        dropped = ran.get("dropped_after_rescore", 0)
        lines.append(
            f"- final front: {count_text(ran['front_size'], 'member')} from the search, "
            f"{dropped} dropped as dominated after re-scoring"
        )
    if data.hypervolume:
        g, hv, size = data.hypervolume[-1]
        lines.append(f"- last generation {g}: hypervolume {hv:.4g}, front size {size}")
    if data.final_hypervolume is not None:
        lines.append(
            f"- hypervolume of the re-scored front: {data.final_hypervolume:.4g} (normalised "
            "on the final seeds; a generation's on its own seeds, which may be capped by "
            "search.max_episode_steps: the two are not on one scale)"
        )
    return lines


def render_markdown(cfg: Config, run: RunFolder, data: RunData) -> str:
    """The text of ``report.md``."""
    tf, n = data.norm.teacher_flops, data.norm
    search_cfg = stage_config(run, "search", cfg)[0]
    md = [f"# a2d-evo report: {data.env_id}", "", f"Run folder: `{run.root}`", ""]
    md += ["![Pareto plot](pareto.png)", ""]
    if data.hypervolume:
        md += ["![Hypervolume per generation](hypervolume.png)", ""]
    md += [
        f"Returns are mean episodic returns of {data.eval_mode} play ± the 95% interval "
        "t·s/√n (t Student's quantile with n − 1 degrees of freedom, 2.045 for 30; s the "
        "sample standard deviation over the n episodes; `a2d-evo eval` prints s and the same "
        "interval). "
        "Normalised return = (R − R_random) / "
        "(R_teacher − R_random). FLOPs are per agent step at batch 1 (2 × multiply-adds); "
        "latency is the median at batch 1 on one CPU thread."
        + (
            " In the Pareto plot the baselines of one width (equal FLOPs) are drawn side by "
            "side (ppo, distill, a2d), so that equal returns do not hide one another."
            if not all(labelled for *_, labelled in baseline_marks(list(data.baselines.values())))
            else ""
        ),
        "",
    ]
    if data.missing:
        md += ["## Missing", "", *(f"- {m}" for m in data.missing), ""]

    md += [
        f"## Pareto front ({count_text(len(data.front), 'member')}, cheapest first)",
        "",
        "`#` is the entry's index in `search/front.json`, as `a2d-evo export --pick` takes it.",
        "",
    ]
    extra: list[tuple[str, Sequence[str]]] = []
    searched = [finite_or_none(r.extra.get("search_return_mean")) for r in data.front]
    if any(v is not None for v in searched):
        extra.append(("search return", [optional_text(v, ".2f") for v in searched]))
        md += [
            "`search return` is the member's mean return over the search's episodes "
            f"({episodes_text(data.history_episodes)}), which made it a candidate of the "
            "delivery's race; the race on fresh seeds chose it, and every other figure is its "
            "re-scoring on fresh seeds.",
            "",
        ]
    exported = exported_names(data)
    if any(exported):
        extra.append(("exported", exported))
    md += [markdown_table(data.front, tf, "#", extra), "", "## Teacher", ""]
    md += [markdown_table([data.teacher], tf, "agent") if data.teacher else "No teacher metrics."]
    md += [
        "",
        "Normalisation (on the front's re-scoring seeds): "
        f"R_teacher = {optional_text(n.r_teacher, '.2f')}, "
        f"R_random = {optional_text(n.r_random, '.2f')} (uniform-random policy); "
        f"teacher FLOPs {optional_text(tf, ',.0f')}. {_two_teacher_returns(data)}",
        "",
    ]
    caution = weak_teacher_caution(n.margin_lower95)
    if caution is not None:
        md += [f"**Caution:** {caution[0].upper()}{caution[1:]}.", ""]
    md += below_threshold(data.teacher, cfg.env.id)

    md += ["## Exported agents", ""]
    if data.agents:
        rows = list(data.agents.values())
        ft = [_finetune_cell(data, r.label) for r in rows]
        md += [markdown_table(rows, tf, "name", [("fine-tuned return", ft)] if any(ft) else [])]
        if "knee" in data.agents:
            k = data.agents["knee"]
            md += [
                "",
                f"Knee point (as exported): `{k.arch}`, {fraction_text(k.flops, tf)} of the "
                f"teacher's FLOPs, normalised return {optional_text(k.normalised_return, '.3f')}.",
            ]
    else:
        md += ["None exported."]

    if data.delivered:
        # the budget its members had (delivered.json), not the stage's now: a later --resume
        # may have trained the supernet further since
        had = data.delivered_supernet_steps
        if had is None:
            had = stage_config(run, "supernet", cfg)[0].supernet.total_steps
        md += [
            "",
            "Delivered front (after fine-tuning, `agents/delivered.json`): "
            + ", ".join(f"`{name}`" for name in data.delivered)
            + ". Each delivered agent had the supernet's "
            f"{had:,} env steps (shared "
            "by every subnet) plus a "
            f"fine-tune budget of {data.delivered_budget or 0:,} of its own. "
            + _chosen_on_sentence(data)
            + (
                " " + guard
                if (guard := random_guard_sentence(data.delivered_guard, data.delivered_chosen_on))
                else ""
            ),
        ]
        shown = [data.agents[a] for a in data.delivered if a in data.agents]
        apart = told_apart([(r.label, r.return_mean, r.ci95, r.normalised_return) for r in shown])
        md += ["", apart] if apart else []

    md += ["", "## Baselines: the teacher scaled in width", ""]
    if data.baselines:
        rows = list(data.baselines.values())
        span = None if n.r_teacher is None or n.r_random is None else n.r_teacher - n.r_random
        # derive-then-distil: baselines face the delivered (fine-tuned) front when there is one
        against = [data.agents[a] for a in data.delivered] or data.front
        which = "delivered front" if data.delivered else "front (inherited weights)"
        verdicts = [dominance(r, against, span) for r in rows]
        paired = [paired_dominance(r, against, span) for r in rows]
        columns = [
            ("method", [str(r.extra.get("method")) for r in rows]),
            ("env steps", [optional_text(r.extra.get("env_steps"), ",.0f") for r in rows]),
            ("dominated", ["yes" if d else "no" for d, _ in verdicts]),
            (
                f"paired, margin {NONINFERIORITY_MARGIN:g}",
                ["n/a" if d is None else "yes" if d else "no" for d, _ in paired],
            ),
        ]
        decided = [d for d, _ in paired if d is not None]
        undecided = len(rows) - len(decided)
        if not decided:
            paired_tail = (
                "; the paired verdict is undecided for every baseline (the reason is on its line)."
            )
        else:
            paired_tail = f", {sum(decided)} of {len(decided)} decided at the paired margin"
            paired_tail += f" ({undecided} undecided)." if undecided else "."
        md += [
            markdown_table(rows, tf, "name", columns),
            "",
            f"Compared with the {which}. A baseline is dominated when a member has at most its "
            "FLOPs and at least its normalised return, strictly better in one. The verdicts "
            "compare point estimates; the margins are front − baseline ± the 95% half-width of "
            "the difference: paired on the same seeds where marked so, else from the two rows' "
            "own intervals (usually wider: it ignores what the shared seeds have in common). The "
            "paired verdict is issue [J]'s non-inferiority rule: some "
            "member with at most the baseline's FLOPs whose per-episode difference in "
            "normalised return, on the same seeds, has a 95% lower bound above "
            f"-{NONINFERIORITY_MARGIN:g}. Each baseline's env steps are those its training "
            f"recorded.{_inherited_budget_note(cfg, run, data, rows)}",
            "",
            *(
                f"- `{r.label}`: {text}; paired: {ptext}."
                for r, (_, text), (_, ptext) in zip(rows, verdicts, paired, strict=True)
            ),
            "",
            f"The front dominates {sum(d for d, _ in verdicts)} of "
            f"{count_text(len(rows), 'baseline')} on point estimates{paired_tail}",
        ]
    else:
        md += ["No baselines found."]

    md += ["", "## Search settings", "", *_settings(search_cfg, data)]
    md += [
        "",
        "## Reproduce",
        "",
        "Into a new folder (the finished stages of this one refuse to be overwritten):",
        "",
        "```",
        *reproduce_commands(cfg, run, data),
        "```",
        "",
    ]
    return "\n".join(md)


# ----------------------------------------------------------------------------- entry
# one writer of RUN_DIR/report/ at a time, never through a symlink out of the run
@writes(lambda a: a["run"].inside(a["run"].report, "reports"))
def write_report(cfg: Config, run: RunFolder) -> Path:
    """Write ``pareto.png``, ``hypervolume.png`` and ``report.md`` under ``RUN_DIR/report/``;
    return the path of ``report.md``.

    All three are rendered in memory first, so a failure leaves the previous report whole; a
    ``hypervolume.png`` left by an earlier report is removed when this run has no hypervolume.
    """
    data = load_run(cfg, run)
    pareto = pareto_png(data)
    curve = hypervolume_png(data) if data.hypervolume else None
    text = render_markdown(cfg, run, data)
    write_bytes(run.report / "pareto.png", pareto)
    if curve is not None:
        write_bytes(run.report / "hypervolume.png", curve)
    else:
        (run.report / "hypervolume.png").unlink(missing_ok=True)
    return write_text(run.report / "report.md", text)

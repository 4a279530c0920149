"""Verdicts on real third-party runs (shared/realworld, see its MANIFEST.md); skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from tblive.judge.findings import Status
from tblive.judge.verdict import evaluate
from tblive.series.stats import MetricStats

REALWORLD = Path(__file__).resolve().parents[1].parent / "shared" / "realworld"
pytestmark = pytest.mark.skipif(not REALWORLD.is_dir(), reason="shared/realworld not present")

MAPUSH = [
    "mapush_openrl_mappo_cuboid",
    "mapush_openrl_mappo_cylinder",
    "mapush_openrl_mappo_tblock",
]


def verdicts(case: str):
    from tblive.doors.posthoc import analyze

    results = analyze(str(REALWORLD / case))
    return {r.verdict.run: r.verdict for r in results if r.verdict.points}


def statuses(case: str) -> Dict[str, Status]:
    return {run: verdict.status for run, verdict in verdicts(case).items()}


def checks_at(case: str, status: Status) -> List[Tuple[str, str]]:
    return [
        (run, f.check)
        for run, v in verdicts(case).items()
        for f in v.findings
        if f.status == status
    ]


@pytest.mark.parametrize("case", MAPUSH)
def test_mapush_successful_runs_not_critical(case):
    found = statuses(case)
    assert found and all(s == Status.WARNING for s in found.values()), found
    entropy = [f for v in verdicts(case).values() for f in v.findings if f.check == "Entropy"]
    # the entropy rise is said, and excused by the return improving or holding its gain
    message = entropy[0].message
    assert entropy[0].status == Status.WARNING, message
    assert "learning" in message or "keeps its gains" in message, message


@pytest.mark.parametrize(
    "case", ["td3_carla_q_divergence_30k", "td3_carla_actor_loss_explosion_5k"]
)
def test_td3_failures_critical(case):
    assert list(statuses(case).values()) == [Status.CRITICAL]
    assert any(check == "Q-Value Divergence" for _, check in checks_at(case, Status.CRITICAL))


@pytest.mark.parametrize(
    "case",
    [
        "sb3_zoo_ppo_cartpole_3seeds",
        "mappo_smac_8m_healthy",
        "rsl_rl_legged_gym_biped",
        "catboost_learn_test",
    ],
)
def test_healthy_runs_have_no_critical(case):
    found = statuses(case)
    assert found and all(s < Status.CRITICAL for s in found.values()), checks_at(
        case, Status.CRITICAL
    )


def test_mlagents_flat_soccer_not_ok():
    """Self-play ELO 1200 -> 1195 and entropy 3.29 -> 3.28 over 1.7M steps: not learning; a
    WARNING while live, CRITICAL when the report judges the run finished (files unchanged)."""
    found = statuses("mlagents_poca_soccer_flat")
    assert list(found.values()) in ([Status.WARNING], [Status.CRITICAL]), found
    flagged = {c for _, c in checks_at("mlagents_poca_soccer_flat", list(found.values())[0])}
    assert "Reward Trend" in flagged, flagged


@pytest.mark.parametrize(
    "case,check",
    [
        ("keras_tf2_overfit_train_val", "Overfitting"),
        ("light_mappo_ratio_anomaly_empty_runs", "PPO Health"),
        ("sb3_zoo_ppo_walker2d_3seeds", "PPO Health"),
        ("sb3_ppo_carla_restarts_same_dir", "Value Loss"),
    ],
)
def test_known_problems_warned(case, check):
    assert check in {c for _, c in checks_at(case, Status.WARNING)}
    assert not checks_at(case, Status.CRITICAL)


def test_frozen_agents_without_any_net_improvement_is_critical():
    """SMAC 5m_vs_6m: gradients exactly 0 on 82% of updates and the evaluation return shows no
    net improvement over 6.4M steps: the frozen agents are warned, the run is not learning."""
    case = "mappo_smac_5m_vs_6m_frozen_agents"
    assert "Frozen Gradients" in {c for _, c in checks_at(case, Status.WARNING)}
    assert {c for _, c in checks_at(case, Status.CRITICAL)} == {"Reward Trend"}


def mapush_points(case: str) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Tag -> (steps, values) via tensorboard's EventAccumulator (nested tensorboardX layout)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    series: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
    for directory, _, files in os.walk(REALWORLD / case):
        if not any("tfevents" in name for name in files):
            continue
        accumulator = EventAccumulator(directory, size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            events = sorted(accumulator.Scalars(tag), key=lambda e: e.step)
            series[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return series


@pytest.mark.parametrize("case", MAPUSH)
def test_mapush_never_critical_at_any_prefix(case):
    series = mapush_points(case)
    assert "dist_entropy" in series
    last = max(steps[-1] for steps, _ in series.values())
    for percent in range(5, 101, 5):
        view = {}
        for tag, (steps, values) in series.items():
            keep = steps <= last * percent / 100.0
            if keep.any():
                stats = MetricStats()
                stats.update_many(steps[keep], values[keep])
                view[tag] = stats
        verdict = evaluate(case, view)
        assert verdict.status < Status.CRITICAL, (
            percent,
            [f.message for f in verdict.findings if f.status == Status.CRITICAL],
        )


# Labels from the MANIFEST of the real runs (repository evidence, not a tool's verdict).
HEALTHY = [
    "harl_happo_monopoly_healthy",
    "pymarl_iql_smac3m_healthy",
    "pymarl_qmix_smacMMM2_healthy",
    "samplefactory_doom_deathmatch_healthy",
    "lightmappo_metadrive_intersection_short_healthy",
    "rslrl_leggedgym_debug_healthy",
    "sb3_sac_pendulum_healthy",
    "tianshou_dqn_cartpole_healthy",
    "sb3_zoo_ppo_cartpole_3seeds",
    "mappo_smac_8m_healthy",
    "mappo_mpe_simple_spread",
    "rsl_rl_legged_gym_biped",
    "mlagents_ppo_soccer_curriculum_restarts",
] + MAPUSH
FAILED = [
    "harl_happo_monopolypf_collapse_failed",
    "pymarl_dcg_smacMMM2_failed",
    "pymarl_iql_smac25m_failed",
    "mlagents_poca_soccer2_noscore_failed",
    "td3_carla_q_divergence_30k",
    "td3_carla_actor_loss_explosion_5k",
]


def prefix_verdicts(case: str, finished_at_end: bool = True):
    """Verdicts at 10/30/60% of the run's steps (live) and at 100% (finished)."""
    import logging

    from tblive.judge.context import FINISHED, RunContext
    from tblive.read.runs import load_points

    logging.disable(logging.WARNING)
    try:
        runs = load_points(str(REALWORLD / case))
    finally:
        logging.disable(logging.NOTSET)
    out = {}
    for run, series in runs.items():
        arrays = {tag: pts.arrays()[:2] for tag, pts in series.items() if len(pts)}
        if not arrays:
            continue
        first = min(int(s[0]) for s, _ in arrays.values())
        last = max(int(s[-1]) for s, _ in arrays.values())
        for percent in (10, 30, 60, 100):
            cut = first + (last - first) * percent / 100.0
            view = {}
            for tag, (steps, values) in arrays.items():
                keep = steps <= cut
                if keep.any():
                    stats = MetricStats()
                    stats.update_many(steps[keep], values[keep])
                    view[tag] = stats
            context = RunContext(state=FINISHED) if percent == 100 and finished_at_end else None
            out[(run, percent)] = evaluate(run, view, context=context)
    return out


@pytest.mark.parametrize("case", HEALTHY)
def test_healthy_real_runs_never_critical_at_10_30_60_100(case):
    for (run, percent), verdict in prefix_verdicts(case).items():
        assert verdict.status < Status.CRITICAL, (
            run,
            percent,
            [f.message for f in verdict.findings if f.status == Status.CRITICAL],
        )


@pytest.mark.parametrize("case", FAILED)
def test_failed_real_runs_critical_by_60_percent_and_when_finished(case):
    found = prefix_verdicts(case)
    for (run, percent), verdict in found.items():
        if percent >= 60:
            assert verdict.status == Status.CRITICAL, (run, percent, verdict.summary)


def manifest_healthy() -> List[str]:
    """Cases whose MANIFEST row carries the label **healthy**, plus the older rows described as
    healthy in prose (``HEALTHY``): every run the MANIFEST calls healthy."""
    found = list(HEALTHY)
    manifest = REALWORLD / "MANIFEST.md"
    if not manifest.is_file():  # the module is skipped then; collection must not fail
        return []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and "**healthy**" in cells and cells[1] not in found:
            found.append(cells[1])
    return [case for case in found if (REALWORLD / case).is_dir()]


def live_prefixes(case: str, percents: List[int]):
    """(run, percent, view, planned) for the live prefixes of every run of ``case``, built
    once from the arrays: each tag's statistics are fed chunk by chunk, so every prefix costs
    only its new points. A tag on another x-axis (its last step below a fifth of the run's, e.g.
    an episode index next to env steps) is cut at the same share of its own range."""
    import logging

    from tblive.read.runs import load_points

    logging.disable(logging.WARNING)
    try:
        runs = load_points(str(REALWORLD / case))
    finally:
        logging.disable(logging.NOTSET)
    for run, series in runs.items():
        arrays = {tag: pts.arrays()[:2] for tag, pts in series.items() if len(pts)}
        if not arrays:
            continue
        first = min(int(s[0]) for s, _ in arrays.values())
        last = max(int(s[-1]) for s, _ in arrays.values())
        stats = {tag: MetricStats() for tag in arrays}
        fed = {tag: 0 for tag in arrays}
        for percent in percents:
            share = percent / 100.0
            for tag, (steps, values) in arrays.items():
                lo, hi = int(steps[0]), int(steps[-1])
                cut = first + (last - first) * share if hi >= 0.2 * last else lo + (hi - lo) * share
                end = int(np.searchsorted(steps, cut, side="right"))
                if end > fed[tag]:
                    stats[tag].update_many(steps[fed[tag] : end], values[fed[tag] : end])
                    fed[tag] = end
            view = {tag: s for tag, s in stats.items() if fed[tag]}
            yield run, percent, view, last


def test_the_manifest_labels_at_least_ten_runs_healthy():
    assert len(manifest_healthy()) >= 10, manifest_healthy()


@pytest.mark.parametrize("case", manifest_healthy())
def test_manifest_healthy_runs_never_critical_at_any_2_percent_prefix(case):
    """The promise: a healthy run is never CRITICAL at any point of its life, whether its
    planned length is unknown (no context) or known (live, planned = its last step)."""
    from tblive.judge.context import LIVE, RunContext

    bad = []
    for run, percent, view, last in live_prefixes(case, list(range(2, 100, 2))):
        for context in (None, RunContext(state=LIVE, planned_steps=last)):
            verdict = evaluate(run, view, context=context)
            if verdict.status == Status.CRITICAL:
                bad.append(
                    (
                        percent,
                        "planned" if context else "no context",
                        [f.message[:160] for f in verdict.findings if f.status == Status.CRITICAL],
                    )
                )
    assert not bad, bad

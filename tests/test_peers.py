"""Peers: one seed far behind all its sibling seeds, at the same step, is a WARNING.

A sweep is written by tensorboardX (``sweep/seed-N/logs``) and read by the report; the families
of healthy spreads are fed as arrays straight into the statistics and the check (the same
``check(view, roles, config, context)`` the verdict runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from tensorboardX import SummaryWriter

from tblive.doors.posthoc import analyze
from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import classify
from tblive.judge.rules import CHECKS, peers
from tblive.run import RunRecord, find_siblings, new_stats

REWARD = "rollout/ep_rew_mean"
SUCCESS = "eval/success_rate"
POINTS = 120
EVERY = 1000


def curve(level: float, tau: float, seed: int, points: int = POINTS, noise: float = 0.04):
    """A learning curve rising to ``level`` (time constant ``tau`` as a share of the run)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, points + 1) / POINTS
    return level * (1.0 - np.exp(-t / tau)) + rng.normal(0.0, noise * abs(level) + 1e-3, points)


def write_sweep(root: Path, levels: List[float], points: Optional[List[int]] = None) -> Path:
    """One run per level under ``root/seed-N/logs``: reward and success curves, entropy."""
    for number, level in enumerate(levels):
        writer = SummaryWriter(str(root / ("seed-%d" % (number + 1)) / "logs"))
        count = POINTS if points is None else points[number]
        reward = curve(level, 0.2 + 0.03 * number, seed=number)
        success = np.clip(curve(level / 100.0, 0.25, seed=100 + number, noise=0.02), 0, 1)
        for index in range(count):
            step = (index + 1) * EVERY
            writer.add_scalar(REWARD, float(reward[index]), step)
            writer.add_scalar(SUCCESS, float(success[index]), step)
            writer.add_scalar("train/entropy", 1.0 - 0.002 * index, step)
        writer.close()
    return root


def peer_findings(record: RunRecord) -> List[Finding]:
    assert record.verdict is not None
    return [f for f in record.verdict.findings if f.check == peers.NAME]


def test_one_seed_far_behind_its_siblings_is_a_warning_naming_them(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sweep", [100.0, 92.0, 108.0, 97.0, 30.0])
    records = {r.name: r for r in analyze(str(tmp_path / "sweep"))}
    assert sorted(records) == ["seed-%d/logs" % n for n in range(1, 6)]
    bad = records["seed-5/logs"]
    assert bad.siblings == ["seed-%d/logs" % n for n in range(1, 5)]
    warnings = [f for f in peer_findings(bad) if f.status == Status.WARNING]
    assert {f.metric for f in warnings} == {REWARD, SUCCESS}
    for finding in warnings:
        for sibling in ("seed-1/logs", "seed-2/logs", "seed-3/logs", "seed-4/logs"):
            assert sibling in finding.message
        assert "far behind all 4 sibling runs" in finding.message
        assert finding.details["step"] == POINTS * EVERY
        assert finding.details["gap"] >= finding.details["gap_needed"] > 0
    # the healthy seeds are not behind anyone
    for name in ("seed-1/logs", "seed-2/logs", "seed-3/logs", "seed-4/logs"):
        statuses = [f.status for f in peer_findings(records[name])]
        assert statuses and all(s == Status.OK for s in statuses), name
    # never CRITICAL on its own
    assert all(f.status != Status.CRITICAL for r in records.values() for f in peer_findings(r))


def test_comparison_is_at_the_same_step(tmp_path: Path) -> None:
    """A healthy seed half-way through is compared with its siblings at half-way, not at
    their end; a sibling that reached less than half of its steps is not a peer."""
    write_sweep(tmp_path / "sweep", [100.0, 95.0, 105.0, 100.0], points=[120, 120, 120, 50])
    records = {r.name: r for r in analyze(str(tmp_path / "sweep"))}
    young = peer_findings(records["seed-4/logs"])
    assert young and all(f.status == Status.OK for f in young)
    assert all(f.details["step"] == 50 * EVERY for f in young)
    # for a full-length seed the short one is not comparable: 2 peers remain
    full = peer_findings(records["seed-1/logs"])
    assert all(set(f.details["sibling_levels"]) == {"seed-2/logs", "seed-3/logs"} for f in full)
    # a seed far behind at the same step is found even when it is shorter
    write_sweep(tmp_path / "other", [100.0, 95.0, 105.0, 25.0], points=[120, 120, 120, 70])
    records = {r.name: r for r in analyze(str(tmp_path / "other"))}
    late = peer_findings(records["seed-4/logs"])
    assert any(f.status == Status.WARNING and f.details["step"] == 70 * EVERY for f in late)


def _view(reward: np.ndarray) -> Dict[str, object]:
    stats = new_stats(REWARD)
    steps = np.arange(1, reward.size + 1) * EVERY
    stats.update_many(steps, reward)
    return {REWARD: stats}


def _peer_statuses(levels: List[float], taus: List[float], seed: int) -> List[Status]:
    """The peer check's worst status for each run of an array-fed sweep."""
    views = [
        _view(curve(level, tau, seed=seed * 100 + number))
        for number, (level, tau) in enumerate(zip(levels, taus))
    ]
    config = Config.default()
    roles = classify(views[0].keys(), config)
    worst = []
    for index, view in enumerate(views):
        siblings = {"seed-%d" % n: v for n, v in enumerate(views) if n != index}
        found = peers.check(view, roles, config, RunContext(siblings=siblings))  # type: ignore[arg-type]
        assert found, "the check judged nothing"
        worst.append(max(f.status for f in found))
    return worst


def test_healthy_seeds_with_natural_spread_are_not_flagged() -> None:
    """Many sweeps of 3-6 healthy seeds (final levels +-15%, learning speeds 2x apart)."""
    rng = np.random.default_rng(7)
    for trial in range(40):
        count = int(rng.integers(3, 7))
        levels = list(rng.uniform(85.0, 115.0, count))
        taus = list(rng.uniform(0.12, 0.3, count))
        statuses = _peer_statuses(levels, taus, seed=trial)
        assert Status.WARNING not in statuses, (trial, levels, taus)


def _statuses_of(arrays: List[np.ndarray]) -> List[Status]:
    views = [_view(a) for a in arrays]
    config = Config.default()
    roles = classify(views[0].keys(), config)
    worst = []
    for index, view in enumerate(views):
        siblings = {"seed-%d" % n: v for n, v in enumerate(views) if n != index}
        found = peers.check(view, roles, config, RunContext(siblings=siblings))  # type: ignore[arg-type]
        worst.append(max(f.status for f in found))
    return worst


def test_flat_sweeps_and_negative_rewards() -> None:
    # nobody learned: nobody is behind, whatever the offsets and the noise
    rng = np.random.default_rng(3)
    flat = [offset + rng.normal(0.0, 1.0, POINTS) for offset in (-500.0, -503.0, -501.0)]
    assert _statuses_of(flat) == [Status.OK] * 3
    # costs improving from -100 towards 0: the seed stuck near -80 is the one flagged
    t = np.arange(1, POINTS + 1) / POINTS
    costs = [
        -100.0 + (100.0 - final) * (1.0 - np.exp(-t / 0.2)) + rng.normal(0.0, 2.0, POINTS)
        for final in (1.0, 3.0, 2.0, 80.0)
    ]
    assert _statuses_of(costs) == [Status.OK, Status.OK, Status.OK, Status.WARNING]


def test_far_behind_family_is_flagged_at_30_60_100_percent() -> None:
    """The same bad seed, judged on prefixes of the run: flagged once the siblings have risen."""
    config = Config.default()
    for seed in range(5):
        levels = [100.0, 90.0, 110.0, 20.0]
        arrays = [curve(level, 0.15, seed=seed * 10 + n) for n, level in enumerate(levels)]
        for share in (0.3, 0.6, 1.0):
            upto = int(POINTS * share)
            views = [_view(a[:upto]) for a in arrays]
            roles = classify(views[0].keys(), config)
            siblings = {"seed-%d" % n: v for n, v in enumerate(views[:3])}
            found = peers.check(views[3], roles, config, RunContext(siblings=siblings))  # type: ignore[arg-type]
            assert [f.status for f in found] == [Status.WARNING], (seed, share, found)


def test_whole_verdict_on_the_sweep_family_at_30_60_100_percent() -> None:
    """Through the whole verdict: the bad seed is at least a WARNING (naming its peers) at 30%,
    60% and 100% of its run, live or finished; its healthy siblings are never CRITICAL."""
    from tblive.judge.verdict import evaluate

    levels = [100.0, 90.0, 110.0, 20.0]
    arrays = [curve(level, 0.15, seed=40 + n) for n, level in enumerate(levels)]
    for share in (0.3, 0.6, 1.0):
        upto = int(POINTS * share)
        views = [_view(a[:upto]) for a in arrays]
        for state in ("live", "finished"):
            for index, view in enumerate(views):
                siblings = {"seed-%d" % n: v for n, v in enumerate(views) if n != index}
                context = RunContext(state=state, siblings=siblings)  # type: ignore[arg-type]
                verdict = evaluate("seed-%d" % index, view, Config.default(), context)  # type: ignore[arg-type]
                if index == 3:
                    found = [f for f in verdict.findings if f.check == peers.NAME]
                    assert [f.status for f in found] == [Status.WARNING], (share, state)
                    assert verdict.status >= Status.WARNING
                else:
                    assert verdict.status != Status.CRITICAL, (share, state, verdict.findings)


def test_no_siblings_no_finding_and_registered() -> None:
    assert peers in CHECKS
    view = _view(curve(100.0, 0.2, seed=1))
    roles = classify(view.keys(), Config.default())
    assert peers.check(view, roles, Config.default(), None) == []  # type: ignore[arg-type]
    assert peers.check(view, roles, Config.default(), RunContext()) == []  # type: ignore[arg-type]
    one = {"other": _view(curve(20.0, 0.2, seed=2))}
    assert peers.check(view, roles, Config.default(), RunContext(siblings=one)) == []  # type: ignore[arg-type]


def _record(path: str, tags: List[str]) -> RunRecord:
    return RunRecord(path, "/r/" + path, series={tag: new_stats(tag) for tag in tags})


def test_what_counts_as_the_same_configuration() -> None:
    tags = [REWARD, "train/entropy"]
    records = [
        _record("happo/seed-00001-2024-07-03-13-33-38/logs", tags),
        _record("happo/seed-00002-2024-07-03-18-57-44/logs", tags),
        _record("happo/seed-00003-2024-07-04-01-02-03/logs", tags + ["extra"]),  # other tags
        _record("ppo/CartPole-v1_1/CartPole-v1/PPO_1", tags),
        _record("ppo/CartPole-v1_2/CartPole-v1/PPO_1", tags),
        _record("mapush/10-15-23_cuboid/logs", tags),  # another task: a word differs
        _record("mapush/10-15-23_cylinder/logs", tags),
        _record("sweep/lr1/seed1", tags),  # two parts differ
        _record("sweep/lr2/seed2", tags),
        _record("alone", []),
    ]
    found = find_siblings(records, "/r")
    assert sorted(found["happo/seed-00001-2024-07-03-13-33-38/logs"]) == [
        "happo/seed-00002-2024-07-03-18-57-44/logs"
    ]
    assert found["happo/seed-00003-2024-07-04-01-02-03/logs"] == {}
    assert sorted(found["ppo/CartPole-v1_1/CartPole-v1/PPO_1"]) == [
        "ppo/CartPole-v1_2/CartPole-v1/PPO_1"
    ]
    assert found["mapush/10-15-23_cuboid/logs"] == {}
    assert found["sweep/lr1/seed1"] == {} and found["alone"] == {}


def test_real_walker2d_seeds(realworld: Path) -> None:
    """rl-zoo PPO Walker2D, 3 seeds: seed 1 peaks at 661 while seeds 2 and 3 reach 1238/1615."""
    records = {
        r.name.split("/")[0]: r for r in analyze(str(realworld / "sb3_zoo_ppo_walker2d_3seeds"))
    }
    bad = [f for f in peer_findings(records["Walker2DBulletEnv-v0_1"]) if f.status]
    assert [f.metric for f in bad] == [REWARD]
    assert "Walker2DBulletEnv-v0_2" in bad[0].message and "Walker2DBulletEnv-v0_3" in bad[0].message
    for good in ("Walker2DBulletEnv-v0_2", "Walker2DBulletEnv-v0_3"):
        assert all(f.status == Status.OK for f in peer_findings(records[good]))


def test_real_cartpole_seeds_agree(realworld: Path) -> None:
    for record in analyze(str(realworld / "sb3_zoo_ppo_cartpole_3seeds")):
        statuses = [f.status for f in peer_findings(record)]
        assert statuses == [Status.OK], (record.name, statuses)

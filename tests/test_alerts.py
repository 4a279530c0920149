"""AlertTracker digests, grace, cooldown, lifecycle and state; Alert rendering; sparklines."""

from __future__ import annotations

import json
import math

import pytest

from tblive.alert.tracker import (
    CRASHED,
    FINISHED,
    PROBLEM,
    RECOVERED,
    REMINDER,
    RESUMED,
    STALLED,
    STARTUP,
    WORSE,
    Alert,
    AlertPolicy,
    AlertTracker,
    sparkline,
    startup_digest,
)
from tblive.judge.findings import Finding, Status, Verdict

HOUR = 3600.0


def entropy(status: Status, value: float = 0.01) -> Finding:
    return Finding(
        "Entropy", status, "entropy %.3g below 0.05: policy collapsed" % value, metric="entropy"
    )


def grad(agent: int, status: Status) -> Finding:
    return Finding(
        "Gradient Norms",
        status,
        "agent%d/grad_norm is 1e4, above 100" % agent,
        metric="agent%d/grad_norm" % agent,
    )


def verdict(*findings: Finding, run: str = "ppo_seed1", steps: int = 0) -> Verdict:
    return Verdict(run=run, findings=list(findings), total_steps=steps)


def test_problem_once_then_silence_then_one_recovery():
    tracker = AlertTracker(
        AlertPolicy(cooldown_seconds=HOUR, recovery_confirmations=1), host="gpu3"
    )
    kinds = []
    now = 1000.0
    kinds += tracker.observe(verdict(entropy(Status.OK)), now)
    for i in range(50):  # fifty evaluations, one minute apart, all CRITICAL
        alerts = tracker.observe(verdict(entropy(Status.CRITICAL)), now + 60.0 * (i + 1))
        kinds += alerts
    kinds += tracker.observe(verdict(entropy(Status.OK)), now + 60.0 * 52)
    kinds += tracker.observe(verdict(entropy(Status.OK)), now + 60.0 * 53)
    assert [a.kind for a in kinds] == [PROBLEM, RECOVERED]
    problem, recovered = kinds
    assert problem.status == Status.CRITICAL and problem.check == "Entropy"
    assert problem.time == now + 60.0 and problem.host == "gpu3"
    assert recovered.status == Status.OK and recovered.previous == Status.CRITICAL
    assert "back to OK" in recovered.title


def test_one_digest_per_run_and_evaluation():
    tracker = AlertTracker(AlertPolicy(recovery_confirmations=1), host="h")
    alerts = tracker.observe(verdict(entropy(Status.WARNING), grad(0, Status.CRITICAL)), 0.0)
    (digest,) = alerts
    assert digest.kind == PROBLEM and digest.status == Status.CRITICAL
    assert [(c.check, c.kind, c.status) for c in digest.changes] == [
        ("Gradient Norms", PROBLEM, Status.CRITICAL),
        ("Entropy", PROBLEM, Status.WARNING),
    ]
    assert digest.title == "CRITICAL run 'ppo_seed1': Gradient Norms, Entropy"
    lines = digest.text.splitlines()
    assert lines[1].startswith("- [CRITICAL] Gradient Norms: OK -> CRITICAL: agent0/grad_norm")
    assert lines[2].startswith("- [WARNING] Entropy: OK -> WARNING: entropy")
    # only Entropy recovers: one digest with one line; the headline is the run's status
    (recovered,) = tracker.observe(verdict(entropy(Status.OK), grad(0, Status.CRITICAL)), 10.0)
    assert recovered.kind == RECOVERED and recovered.check == "Entropy"
    assert recovered.status == Status.CRITICAL and "Entropy back to OK" in recovered.title
    assert tracker.active_problems("ppo_seed1") == {"Gradient Norms": Status.CRITICAL}


def test_a_flickering_check_is_not_a_recovery_plus_a_new_problem():
    tracker = AlertTracker(host="h")  # recovery needs 3 evaluations of new data
    sent = tracker.observe(verdict(entropy(Status.CRITICAL), steps=100), 0.0)
    for i in range(1, 31):
        status = Status.OK if i % 3 else Status.CRITICAL  # OK twice, then bad again
        sent += tracker.observe(verdict(entropy(status), steps=100 + i), float(i))
    assert [a.kind for a in sent] == [PROBLEM]
    # the same OK verdict re-judged without new data does not count
    for _ in range(5):
        sent += tracker.observe(verdict(entropy(Status.OK), steps=500), 40.0)
    assert [a.kind for a in sent] == [PROBLEM]
    sent += tracker.observe(verdict(entropy(Status.OK), steps=501), 41.0)
    sent += tracker.observe(verdict(entropy(Status.OK), steps=502), 42.0)
    assert [a.kind for a in sent] == [PROBLEM, RECOVERED]


def test_nothing_is_announced_in_grace_then_one_digest():
    tracker = AlertTracker(host="h")
    young = verdict(entropy(Status.CRITICAL), grad(0, Status.WARNING))
    for i in range(20):
        assert tracker.observe(young, float(i), in_grace=True) == []
    assert tracker.active_problems("ppo_seed1") == {}
    (digest,) = tracker.observe(young, 30.0)
    assert digest.checks == ["Entropy", "Gradient Norms"]
    assert tracker.observe(young, 31.0) == []


def test_reminder_is_one_digest_for_every_bad_check_and_stops_when_finished():
    tracker = AlertTracker(AlertPolicy(cooldown_seconds=600.0), host="h")
    bad = verdict(entropy(Status.CRITICAL), grad(1, Status.WARNING))
    tracker.observe(bad, 0.0)
    assert tracker.observe(bad, 599.0) == []
    (reminder,) = tracker.observe(bad, 600.0)
    assert reminder.kind == REMINDER
    assert [(c.check, c.kind) for c in reminder.changes] == [
        ("Entropy", REMINDER),
        ("Gradient Norms", REMINDER),
    ]
    assert "still CRITICAL" in reminder.text
    assert tracker.lifecycle("ppo_seed1", FINISHED, 700.0, verdict=bad) is not None
    assert tracker.observe(bad, 5000.0) == []  # no reminders for a finished run


def test_state_dict_round_trip_means_no_repeat_after_restart():
    tracker = AlertTracker(AlertPolicy(cooldown_seconds=HOUR), host="h")
    bad = verdict(entropy(Status.CRITICAL), grad(1, Status.WARNING))
    tracker.observe(bad, 0.0)
    tracker.lifecycle("other", STALLED, 0.0)
    state = json.loads(json.dumps(tracker.state_dict()))  # JSON-ready
    restarted = AlertTracker(AlertPolicy(cooldown_seconds=HOUR), host="h")
    restarted.load_state_dict(state)
    assert restarted.observe(bad, 60.0) == []  # nothing changed: nothing sent
    assert restarted.lifecycle("other", STALLED, 60.0) is None
    assert [a.kind for a in restarted.observe(bad, HOUR + 1.0)] == [REMINDER]
    (worse,) = restarted.observe(
        verdict(entropy(Status.CRITICAL), grad(1, Status.CRITICAL)), 2 * HOUR
    )
    assert worse.kind == WORSE and worse.previous == Status.WARNING
    for broken in ({"version": 99, "runs": {}}, {"version": 1, "runs": {"r": {"groups": 3}}}, {}):
        with pytest.raises(ValueError):
            AlertTracker(host="h").load_state_dict(broken)


def test_startup_digest_is_one_message_worst_first():
    tracker = AlertTracker(host="h")
    alerts = []
    for i in range(30):
        status = Status.CRITICAL if i % 3 else Status.WARNING
        alerts += tracker.observe(verdict(entropy(status), run="seed%02d" % i), 0.0)
    digest = startup_digest(alerts, 1.0, "h", where="/runs")
    assert digest.kind == STARTUP and digest.status == Status.CRITICAL
    assert (
        digest.title == "tblive watch started on /runs: 30 runs to report (20 CRITICAL, 10 WARNING)"
    )
    lines = digest.text.splitlines()
    assert len(lines) == 32 and lines[1].startswith("- [CRITICAL] CRITICAL run 'seed01'")
    assert lines[-2].startswith("- [WARNING]")
    record = json.loads(json.dumps(digest.to_dict()))
    assert len(record["runs"]) == 30
    assert Alert.from_dict(record).text == digest.text


def test_worsening_alerts_and_improving_within_bad_is_quiet():
    tracker = AlertTracker(AlertPolicy(cooldown_seconds=HOUR), host="h")
    assert [a.kind for a in tracker.observe(verdict(entropy(Status.WARNING)), 0.0)] == [PROBLEM]
    assert tracker.observe(verdict(entropy(Status.WARNING)), 60.0) == []
    worse = tracker.observe(verdict(entropy(Status.CRITICAL)), 120.0)
    assert [(a.kind, a.status, a.previous) for a in worse] == [
        (WORSE, Status.CRITICAL, Status.WARNING)
    ]
    assert "got worse (WARNING -> CRITICAL)" in worse[0].title
    # back to WARNING and up again within the cooldown: no flapping storm
    assert tracker.observe(verdict(entropy(Status.WARNING)), 180.0) == []
    assert tracker.observe(verdict(entropy(Status.CRITICAL)), 240.0) == []


def test_reminder_after_cooldown_with_fake_clock():
    tracker = AlertTracker(AlertPolicy(cooldown_seconds=600.0), host="h")
    assert [a.kind for a in tracker.observe(verdict(entropy(Status.WARNING)), 0.0)] == [PROBLEM]
    assert tracker.observe(verdict(entropy(Status.WARNING)), 599.0) == []
    reminder = tracker.observe(verdict(entropy(Status.WARNING)), 600.0)
    assert [a.kind for a in reminder] == [REMINDER]
    assert "still WARNING" in reminder[0].title
    # the cooldown restarts at the reminder
    assert tracker.observe(verdict(entropy(Status.WARNING)), 1100.0) == []
    assert [a.kind for a in tracker.observe(verdict(entropy(Status.WARNING)), 1201.0)] == [REMINDER]


def test_default_cooldown_is_an_hour():
    tracker = AlertTracker(host="h")
    assert tracker.policy.cooldown_seconds == HOUR
    tracker.observe(verdict(entropy(Status.CRITICAL)), 0.0)
    assert tracker.observe(verdict(entropy(Status.CRITICAL)), HOUR - 1) == []
    assert [a.kind for a in tracker.observe(verdict(entropy(Status.CRITICAL)), HOUR)] == [REMINDER]


def test_eight_agents_tripping_one_check_make_one_alert():
    tracker = AlertTracker(host="h")
    findings = [grad(i, Status.WARNING if i % 2 else Status.CRITICAL) for i in range(8)]
    alerts = tracker.observe(verdict(*findings, steps=120_000), 0.0)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.kind == PROBLEM and alert.status == Status.CRITICAL
    assert len(alert.findings) == 8
    assert alert.findings[0].status == Status.CRITICAL  # worst first
    text = alert.text
    for i in range(8):
        assert "agent%d/grad_norm" % i in text
    assert "(8 findings)" in alert.title
    assert len(alert.changes) == 1
    assert alert.step == 120_000 and "step 120000" in text
    # more evaluations with the same agents: silence
    assert tracker.observe(verdict(*findings), 30.0) == []


def test_check_missing_from_later_verdict_counts_as_recovered():
    tracker = AlertTracker(AlertPolicy(recovery_confirmations=1), host="h")
    tracker.observe(verdict(grad(0, Status.CRITICAL)), 0.0)
    alerts = tracker.observe(verdict(entropy(Status.OK)), 5.0)
    assert [(a.check, a.kind, a.findings) for a in alerts] == [("Gradient Norms", RECOVERED, [])]
    assert alerts[0].status == Status.OK and "RECOVERED run" in alerts[0].title


def test_runs_are_tracked_independently():
    tracker = AlertTracker(host="h")
    a = tracker.observe(verdict(entropy(Status.CRITICAL), run="a"), 0.0)
    b = tracker.observe(verdict(entropy(Status.CRITICAL), run="b"), 1.0)
    assert [(x.run, x.kind) for x in a + b] == [("a", PROBLEM), ("b", PROBLEM)]
    tracker.forget("a")
    assert [x.kind for x in tracker.observe(verdict(entropy(Status.CRITICAL), run="a"), 2.0)] == [
        PROBLEM
    ]


def test_lifecycle_each_transition_announced_once():
    tracker = AlertTracker(host="h")
    stalled = tracker.lifecycle("r", STALLED, 10.0, message="no new data for 30 min")
    assert stalled is not None and stalled.status == Status.WARNING
    assert "no new data for 30 min" in stalled.text
    assert tracker.lifecycle("r", STALLED, 20.0) is None
    resumed = tracker.lifecycle("r", RESUMED, 30.0)
    assert resumed is not None and resumed.status == Status.OK
    assert tracker.lifecycle("r", RESUMED, 31.0) is None  # not stalled any more
    final = verdict(entropy(Status.CRITICAL), run="r", steps=5000)
    finished = tracker.lifecycle("r", FINISHED, 40.0, verdict=final)
    assert finished is not None
    assert finished.status == Status.CRITICAL and finished.step == 5000
    assert [f.check for f in finished.findings] == ["Entropy"]
    assert "finished (CRITICAL)" in finished.title
    assert tracker.lifecycle("r", FINISHED, 50.0) is None
    assert tracker.lifecycle("r", RESUMED, 60.0) is not None  # the writer came back
    with pytest.raises(ValueError, match="lifecycle kind"):
        tracker.lifecycle("r", "exploded", 70.0)


def test_crashed_is_the_runs_end_at_least_warning():
    tracker = AlertTracker(host="h")
    crashed = tracker.lifecycle("r", CRASHED, 1.0, message="stopped mid-write")
    assert crashed is not None and crashed.status == Status.WARNING
    assert crashed.title == "Run 'r' stopped mid-write (crash?)"
    assert tracker.lifecycle("r", FINISHED, 2.0) is None  # the end is announced once
    assert tracker.lifecycle("r", RESUMED, 3.0) is not None
    final = verdict(entropy(Status.CRITICAL), run="r")
    again = tracker.lifecycle("r", CRASHED, 4.0, verdict=final)
    assert again is not None and again.status == Status.CRITICAL


def test_key_values_pick_the_findings_metric_else_the_first():
    tracker = AlertTracker(AlertPolicy(sparkline_points=5), host="h")
    values = {"reward": [float(i) for i in range(30)], "entropy": [0.5, 0.3, 0.1, 0.02]}
    (alert,) = tracker.observe(verdict(entropy(Status.CRITICAL)), 0.0, key_values=values)
    assert alert.key_metric == "entropy" and alert.sparkline_values == [0.5, 0.3, 0.1, 0.02]
    (alert,) = tracker.observe(
        verdict(grad(1, Status.CRITICAL), run="other"), 0.0, key_values=values
    )
    assert alert.key_metric == "reward" and alert.sparkline_values == [25.0, 26, 27, 28, 29]
    assert "reward \u2581\u2583\u2585\u2586\u2588 last 29" in alert.text
    # a per-agent summary draws its worst agent's curve, not the reward
    summary = Finding(
        "Entropy",
        Status.CRITICAL,
        "2 of 2 agents: entropy rose",
        details={"worst": "agent1/entropy"},
        metric="agent*/entropy",
    )
    values["agent1/entropy"] = [0.1, 0.2, 0.9]
    (alert,) = tracker.observe(verdict(summary, run="marl"), 0.0, key_values=values)
    assert alert.key_metric == "agent1/entropy"


def test_sparkline_shapes():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    assert sparkline([3.0, 3.0, 3.0]) == "\u2584\u2584\u2584"
    assert sparkline([1.0, math.nan, 2.0, math.inf]) == "\u2581\u00d7\u2588\u00d7"
    assert sparkline([]) == ""
    assert len(sparkline(range(100), width=20)) == 20
    assert sparkline(range(100), width=20)[-1] == "\u2588"


def test_alert_to_dict_is_json_ready():
    alert = Alert(
        kind=PROBLEM,
        run="r",
        status=Status.WARNING,
        check="Entropy",
        findings=[entropy(Status.WARNING)],
        step=7,
        host="h",
        time=123.5,
        key_metric="entropy",
        sparkline_values=[0.2, 0.1],
    )
    record = json.loads(json.dumps(alert.to_dict()))
    assert record["status"] == "WARNING" and record["kind"] == PROBLEM and record["step"] == 7
    assert record["findings"][0]["message"].startswith("entropy")
    assert record["message"] == alert.title
    assert alert.emoji == "\U0001f7e1"

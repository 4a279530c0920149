"""Is the run learning, and what are its failure signs? (shared by the slow checks)

* :func:`learning_progress`: the learning state of the primary signals only (main return,
  success or win rates, evaluation returns; never a reward component). A signal *improves*
  when it set a new best beyond its noise in the recent quarter of the run; it *holds* when it
  rose and keeps most of the gain without new bests (a converged run, or a plateau).
* :func:`failure_evidence`: independent signs that the run has failed, and how long they must
  last (:class:`Evidence`). Early in a healthy run the reward is flat and success is zero for a
  while, and some trainers raise their entropy from the start; any one of these alone is what a
  healthy run looks like early on. A failed run shows several, and keeps showing them. So the
  slow checks go CRITICAL only when nothing improves now and the signs have lasted: the grace
  period when three or more signs agree, twice it for two, three times it for one, in run
  progress (share of the planned length when known, else the points of the run's densest
  metric). Before any reward was ever non-zero (a sparse task) every window doubles.

Signs: the primary signals never improved (success never left 0, or the main return is flat
within its noise: one sign, they are one fact); entropy rising; entropy converging (falling by
``entropy.rise``) while nothing ever improved (the policy sharpens without reward); the main return falling; a reward
component computed but negligible (dead).

Hysteresis comes from the history itself: the signs are facts about the whole history (never
improved, never left 0), so once the window has been reached they keep holding until a primary
signal sets a new best beyond its noise, which is the only way back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.roles import Roles
from tblive.judge.rules._common import (
    View,
    component_dead,
    fmt,
    improving,
    in_grace,
    reward_falls,
    success_scale,
    success_stuck_at_zero,
    usable,
)
from tblive.judge.rules._progress import (
    RECENT_SHARE,
    RunClock,
    SignalState,
    primary_tags,
    run_clock,
    signal_state,
)
from tblive.series.stats import MetricStats

#: A lone "the primary signals never improved" sign (a flat return, or success that never left
#: 0 with a flat return: one fact) is the weakest sign (off-policy warm-ups, epsilon schedules and
#: sparse tasks sit flat for long stretches before the return moves): with a known planned length
#: it must last this share of it; with an unknown length a point count says nothing about the
#: share of the run, so it is never CRITICAL while the run is live (CRITICAL once finished).
FLAT_ONLY_SHARE = 0.5


@dataclass
class Progress:
    """Learning state of the run's primary signals.

    ``improving``: some primary signal improves now; ``evidence`` says which; ``holding`` names
    those that rose and keep their gain without new bests; ``checked`` lists every primary
    signal looked at; ``states`` their :class:`SignalState`.
    """

    improving: bool
    evidence: List[str]
    checked: List[str]
    states: List[SignalState] = field(default_factory=list)
    holding: List[str] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """Improving now, or keeping an earlier gain (not a failure, not learning either)."""
        return self.improving or bool(self.holding)

    @property
    def never_improved(self) -> bool:
        """No primary signal looked at shows a net improvement (none is above its early level
        by more than its noise, none improves now)."""
        if self.holds:
            return False
        return bool(self.states) and not any(
            s.net_gain or s.improving or s.clearly_rose for s in self.states
        )

    def state(self, tag: str) -> Optional[SignalState]:
        return next((s for s in self.states if s.tag == tag), None)

    def describe(self) -> str:
        if self.improving:
            return "; ".join(self.evidence)
        if not self.checked:
            return "no reward or success metric logged"
        if self.holding:
            return "; ".join(self.holding)
        names = ", ".join(self.checked[:4]) + (
            " (+%d more)" % (len(self.checked) - 4) if len(self.checked) > 4 else ""
        )
        return "no improvement in %s" % names


def learning_progress(
    view: View, roles: Roles, config: Config, clock: Optional[RunClock] = None
) -> Progress:
    """The learning state of the primary signals (see the module docstring)."""
    success_tags = {ref.tag for ref in roles.success}
    evidence: List[str] = []
    holding: List[str] = []
    checked: List[str] = []
    states: List[SignalState] = []
    for tag in primary_tags(roles):
        stats = view.get(tag)
        if not usable(stats, 4):
            continue
        kind = "success" if tag in success_tags else "reward"
        scale = success_scale(stats) if kind == "success" else 1.0
        state = signal_state(tag, stats, kind, scale)
        if state is None:
            continue
        checked.append(tag)
        states.append(state)
        if state.improving:
            evidence.append(state.describe())
        elif state.holding:
            holding.append(state.describe())
    # a curriculum that steps up is progress in its own right (and lowers the return, so the
    # return before and after a lesson change cannot be compared)
    for ref in roles.curriculum:
        stats = view.get(ref.tag)
        if not usable(stats, 2) or not stats.last_value > stats.first_value:
            continue
        hist = stats.history()
        ups = np.nonzero(np.diff(hist.means) > 0)[0]
        last_up = int(hist.last_steps[ups[-1] + 1]) if ups.size else int(stats.last_step or 0)
        first, last = int(stats.first_step or 0), int(stats.last_step or 0)
        text = "%s steps up %s -> %s (last at step %d)" % (
            ref.tag,
            fmt(stats.first_value),
            fmt(stats.last_value),
            last_up,
        )
        checked.append(ref.tag)
        if last - last_up <= RECENT_SHARE * max(last - first, 1):
            evidence.append(text)
        else:
            holding.append(text)
    return Progress(bool(evidence), evidence, checked, states, holding)


def fell_clearly(state: Optional[SignalState]) -> bool:
    """The signal's current level is below its early level by more than three times its noise
    (True when the signal has no state: too few points to measure a noise)."""
    return state is None or state.early - state.current > 3.0 * state.delta


@dataclass
class Evidence:
    """The run's failure signs, its learning state and its clock (see the module docstring)."""

    signs: List[str]
    progress: Progress
    clock: RunClock
    #: no reward or reward component has ever been non-zero: a sparse task before its first
    #: reward, which has told nothing yet, so every window is twice as long
    no_reward_yet: bool = False

    @property
    def count(self) -> int:
        return len(self.signs)

    #: the only sign is that the primary signals never improved: the weakest sign (see
    #: ``FLAT_ONLY_SHARE``), so it must last longest
    flat_only: bool = False

    def _factor(self) -> int:
        factor = 1 if self.count >= 3 else (2 if self.count == 2 else 3)
        return factor * 2 if self.no_reward_yet else factor

    @property
    def _flat_only_live(self) -> bool:
        """A lone flat return on a live run of unknown length: never enough (see
        ``FLAT_ONLY_SHARE``); nor on a resumed run, whose start (and rise) was not seen: flat
        at the level it resumed at is not "never improved"."""
        if not self.flat_only:
            return False
        return self.clock.resumed or (self.clock.planned <= 0 and not self.clock.finished)

    def points_needed(self, config: Config) -> int:
        return self._factor() * config.grace.min_points

    def share_needed(self, config: Config) -> float:
        """With a known planned length: the share of it the signs must last: twice the grace
        fraction (20%: signs first seen as grace ends must outlast it) when three or more signs
        agree, else three times it (30%: healthy runs have flat starts of up to 30% with zero
        success and rising entropy, and the promise is CRITICAL *by* 30%); twice that before any
        reward was ever non-zero; half the run for the lone "never improved" sign."""
        factor = 2 if self.count >= 3 else 3
        share = factor * (2 if self.no_reward_yet else 1) * config.grace.fraction
        if self.flat_only:
            share = max(share, FLAT_ONLY_SHARE)
        return min(share, 0.9)

    def window(self, config: Config) -> str:
        """How long the signs must last, in the unit the run is measured in."""
        if self.clock.planned > 0 and not (self._flat_only_live and self.clock.resumed):
            return "%.0f%% of the planned %d steps" % (
                100 * self.share_needed(config),
                self.clock.planned,
            )
        if self._flat_only_live and self.clock.resumed:
            return (
                "longer than this resumed run shows (it starts at step %d: its start was not seen)"
                % (self.clock.first_step)
            )
        if self._flat_only_live:
            return "until the run finishes (its planned length is unknown)"
        return "%d points" % self.points_needed(config)

    def enough(self, stats: MetricStats, config: Config, holding_protects: bool = True) -> bool:
        """Past grace, nothing improves now (nor holds its gain, when ``holding_protects``),
        and the signs have lasted long enough in run progress."""
        if self.progress.improving or self.count == 0:
            return False
        if holding_protects and self.progress.holding:
            return False
        if in_grace(stats, config, self.clock) or self._flat_only_live:
            return False
        return self.clock.reached(self.share_needed(config), self.points_needed(config))

    def describe(self) -> str:
        return "%d sign%s: %s" % (self.count, "" if self.count == 1 else "s", "; ".join(self.signs))


def failure_evidence(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> Evidence:
    """Collect the run's independent failure signs (see :class:`Evidence`)."""
    clock = run_clock(view, roles, config, context)
    progress = learning_progress(view, roles, config, clock)
    signs: List[str] = []
    flat_sign = ""
    success_refs = [ref for ref in roles.success if usable(view.get(ref.tag), 2)]
    zero_success = [ref.tag for ref in success_refs if success_stuck_at_zero(view[ref.tag], config)]
    all_zero = bool(zero_success) and len(zero_success) == len(success_refs)
    # success that never left ~0: every success metric stays below `low` (best and now)
    low = config.threshold("success", "low")
    near_zero = [
        s.tag
        for s in progress.states
        if s.kind == "success" and s.best < low + 2.0 * s.noise and s.current < low
    ]
    if (
        success_refs
        and not all_zero
        and len(set(near_zero) | set(zero_success)) == len(success_refs)
    ):
        all_zero = True
        zero_success = zero_success or near_zero
    main = {ref.tag for ref in roles.main_reward}
    min_change = config.threshold("reward", "min_change")
    # falling: by `min_change` with a significant trend, and below its early level by more
    # than three times its noise (a fall is measured against the noise, not against |head|)
    falling = [
        ref.tag
        for ref in roles.main_reward
        if usable(view.get(ref.tag), 4)
        and reward_falls(view[ref.tag], min_change)
        and fell_clearly(progress.state(ref.tag))
    ]
    # no net improvement: never rose beyond the noise, or rose and fell back to the early level
    flat_rewards = [
        s.tag
        for s in progress.states
        if s.kind == "reward" and s.tag in main and not s.net_gain and not s.clearly_rose
    ]
    rewards_flat = bool(flat_rewards) and not any(
        s.net_gain or s.improving for s in progress.states if s.kind == "reward"
    )
    if all_zero and rewards_flat and not falling:
        signs.append("%s never left ~0 and %s is flat" % (zero_success[0], flat_rewards[0]))
        flat_sign = signs[-1]
    elif all_zero:
        # the return rose and plateaus (or falls) short of any success: learning has already
        # stopped below the task, a stronger sign than a flat start, with the usual window
        signs.append("%s never left ~0" % zero_success[0])
    elif progress.never_improved and rewards_flat and not falling:
        signs.append("%s shows no net improvement (within its noise)" % flat_rewards[0])
        flat_sign = signs[-1]
    rise = config.threshold("entropy", "rise")
    usable_entropy = [ref for ref in roles.entropy if usable(view.get(ref.tag), 4)]
    rising = [ref.tag for ref in usable_entropy if improving(view[ref.tag], rise, ref.sign)]
    if rising:
        signs.append("%s rises" % rising[0])
    elif progress.never_improved:
        converging = [
            ref.tag for ref in usable_entropy if improving(view[ref.tag], rise, -ref.sign)
        ]
        if converging:
            signs.append("%s falls while nothing ever improved" % converging[0])
    if falling:
        signs.append("%s falls" % falling[0])
    dead = [
        ref.tag
        for ref in roles.reward_component
        if component_dead(ref, view, roles, config)
        and view[ref.tag].zero_count < view[ref.tag].finite_count
    ]
    if dead:
        signs.append("%s is negligible (dead)" % dead[0])
    rewards = [
        view[ref.tag]
        for ref in list(roles.reward) + list(roles.reward_component)
        if usable(view.get(ref.tag))
    ]
    no_reward_yet = bool(rewards) and all(s.min == 0.0 and s.max == 0.0 for s in rewards)
    flat_only = bool(flat_sign) and signs == [flat_sign]
    return Evidence(signs, progress, clock, no_reward_yet, flat_only)

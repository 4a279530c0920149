"""Judged: say when the run's learning was not judged at all.

Every learning verdict (success, reward trend, entropy against progress, collapse) rests on a
primary signal: the main return or a success/win rate (or, for supervised runs, a training and
a validation loss to compare). A run in which none of them was recognized gets only the
numerical checks (NaN, blow-ups); a green OK would claim more than was looked at. So:

* no reward, no success metric and no train/validation loss pair: WARNING "not judged", naming
  the tags that look like a return or a success rate (``candidates``) and how to name them
  (``[patterns] reward = [...]`` in the config);
* otherwise an OK finding naming the primary signals the verdict rests on.
"""

from __future__ import annotations

import re
from typing import List, Optional

from tblive.judge.config import Config
from tblive.judge.context import RunContext
from tblive.judge.findings import Finding, Status
from tblive.judge.roles import Roles
from tblive.judge.rules._common import View, usable
from tblive.judge.rules._progress import primary_tags

KEY = "coverage"
NAME = "Judged"

#: Words that make an unrecognized tag a candidate primary signal.
_CANDIDATE = re.compile(
    r"(rew|return|score|success|win|elo|goal|solved|accuracy|acc\b|progress|episode)",
    re.IGNORECASE,
)


def candidates(view: View, roles: Roles, limit: int = 6) -> List[str]:
    """Unrecognized tags whose names look like a return or a success rate."""
    known = {tag for refs in roles.to_dict().values() for tag in refs}
    found = [
        tag
        for tag in sorted(view)
        if tag not in known and _CANDIDATE.search(tag) and usable(view.get(tag))
    ]
    return found[:limit]


def check(
    view: View, roles: Roles, config: Config, context: Optional[RunContext] = None
) -> List[Finding]:
    live = [tag for tag, stats in view.items() if usable(stats)]
    if not live:
        return []
    primary = [tag for tag in primary_tags(roles) if usable(view.get(tag))]
    pairs = bool(roles.train_loss) and bool(roles.val_loss)
    if primary:
        return [
            Finding(
                NAME,
                Status.OK,
                "Judged on %s." % ", ".join(primary[:4])
                + (" (+%d more)" % (len(primary) - 4) if len(primary) > 4 else ""),
                {"primary": primary},
            )
        ]
    if pairs:
        tags = [r.tag for r in roles.train_loss][:2] + [r.tag for r in roles.val_loss][:2]
        return [
            Finding(
                NAME,
                Status.OK,
                "Judged on training vs validation loss (%s)." % ", ".join(tags),
                {"primary": tags},
            )
        ]
    found = candidates(view, roles)
    hint = (
        'Tags that look like one: %s; name yours with `[patterns] reward = ["<tag>"]` (or '
        "`success = [...]`) in the config." % ", ".join(found)
        if found
        else 'Name the run\'s return or success tag with `[patterns] reward = ["<tag>"]` (or '
        "`success = [...]`) in the config."
    )
    return [
        Finding(
            NAME,
            Status.WARNING,
            "NOT JUDGED: none of the %d tags was recognized as a reward, success rate or "
            "train/validation loss pair, so only the numerical checks ran (NaN, blow-ups); "
            "this verdict says nothing about learning. %s" % (len(live), hint),
            {"candidates": found, "tags": len(live), "not_judged": True},
        )
    ]

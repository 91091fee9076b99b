"""Which database frame each query is matched against: the study's two protocols.

* ``same-session`` (the paper's main one): per identity one session (video) is drawn,
  and its two selected frames are the database and the query.
* ``cross-session``: per identity two sessions are drawn; the database frame comes from
  the first, the query from the second. LFW has one photo per session, so LFW always
  runs cross-session.

Draws use one ``numpy.random.default_rng(seed)`` walking identities in sorted order.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from benchmark.datasets import natural_key
from benchmark.pipeline.prep import Selection

PROTOCOLS = ("same-session", "cross-session")


@dataclass(frozen=True)
class Pair:
    identity: str
    database: str  # frame uid
    query: str  # frame uid


def pair_frames(
    selections: list[Selection], protocol: str, seed: int = 42, usable: set[str] | None = None
) -> list[Pair]:
    """One (database, query) pair per identity that the protocol can serve.

    ``usable`` restricts to frames that exist downstream (e.g. masks that were made);
    sessions missing a usable side are skipped before the draw, as the original's
    valid-identity rule does.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    by_identity: dict[str, list[Selection]] = defaultdict(list)
    for sel in selections:
        if usable is None or (sel.database in usable and sel.query in usable):
            by_identity[sel.identity].append(sel)
    rng = np.random.default_rng(seed)
    pairs = []
    for identity in sorted(by_identity, key=natural_key):
        sessions = sorted(by_identity[identity], key=lambda s: natural_key(s.session))
        if protocol == "same-session":
            sessions = [s for s in sessions if s.database != s.query]
            if sessions:  # as the original: rng.choice(videos, size=1, replace=False)[0]
                chosen = sessions[int(rng.choice(len(sessions), size=1, replace=False)[0])]
                pairs.append(Pair(identity, chosen.database, chosen.query))
        elif len(sessions) >= 2:
            first, second = rng.choice(len(sessions), size=2, replace=False)
            pairs.append(Pair(identity, sessions[first].database, sessions[second].query))
    return pairs

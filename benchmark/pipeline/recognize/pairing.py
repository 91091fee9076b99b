"""Which database frame each query is matched against: the study's two protocols.

* ``same-session`` (the paper's main one): per identity one session (video) is drawn,
  and its two selected frames are the database and the query.
* ``cross-session``: per identity two sessions are drawn; the database frame comes from
  the first, the query from the second. LFW has one photo per session, so LFW always
  runs cross-session.

Which identities take part (the valid-identity rule, REFERENCE.md: "≥ 2 videos whose
face and overlay embeddings exist in both database and query"), in two readings:

* ``usable-sessions`` (default): an identity needs ≥ 2 sessions whose database and query
  frames are both usable; the draw is among those sessions. A failed mask costs its
  session, not the identity.
* ``all-sessions`` (the original's code, ``final_filtering.py``): an identity needs ≥ 2
  selected videos and EVERY one of them usable, else it is dropped whole; the draw
  (``matching.py``) is among all its selected videos. The ``paper`` profile uses it.
  One difference remains by design: the original's masks failed open (the photo was
  written as the "overlay"), so a failed mask never cost it a person; ours fail closed,
  so n can come out below the original's. The study records how many identities were
  lost to mask failures and how many the rule would keep had masks failed open.

Each identity draws with a generator of its own (``keyed_rng(seed, identity)``), so its
pair does not depend on which other identities were drawn: a study that draws more
identities until enough are valid never changes the pairs it has. (The original walked one
generator over ``os.listdir`` order, which no rerun can reproduce anyway.)
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from benchmark.datasets import keyed_rng, natural_key
from benchmark.pipeline.prep.types import Selection

PROTOCOLS = ("same-session", "cross-session")
IDENTITY_RULES = ("usable-sessions", "all-sessions")
MIN_SESSIONS = 2  # the valid-identity rule's "≥ 2 videos", for both protocols


@dataclass(frozen=True)
class Pair:
    identity: str
    database: str  # frame uid
    query: str  # frame uid


def pair_frames(
    selections: list[Selection],
    protocol: str,
    seed: int = 42,
    usable: set[str] | None = None,
    rule: str = "usable-sessions",
) -> list[Pair]:
    """One (database, query) pair per valid identity (see the module docstring).

    ``usable`` holds the frames that exist downstream (e.g. with face and overlay
    embeddings); None means all of them.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    if rule not in IDENTITY_RULES:
        raise ValueError(f"unknown identity rule {rule!r}; use one of {IDENTITY_RULES}")
    by_identity: dict[str, list[Selection]] = defaultdict(list)
    for sel in selections:
        if protocol == "same-session" and sel.database == sel.query:
            continue  # a one-photo session has no second frame to pair within it
        by_identity[sel.identity].append(sel)

    def is_usable(sel: Selection) -> bool:
        return usable is None or (sel.database in usable and sel.query in usable)

    pairs = []
    for identity in sorted(by_identity, key=natural_key):
        rng = keyed_rng(seed, identity)
        sessions = sorted(by_identity[identity], key=lambda s: natural_key(s.session))
        if rule == "all-sessions":
            if not all(map(is_usable, sessions)):
                continue
        else:
            sessions = [s for s in sessions if is_usable(s)]
        if len(sessions) < MIN_SESSIONS:
            continue
        if protocol == "same-session":  # as the original: rng.choice(videos, size=1)[0]
            chosen = sessions[int(rng.choice(len(sessions), size=1, replace=False)[0])]
            pairs.append(Pair(identity, chosen.database, chosen.query))
        else:
            first, second = rng.choice(len(sessions), size=2, replace=False)
            pairs.append(Pair(identity, sessions[first].database, sessions[second].query))
    return pairs

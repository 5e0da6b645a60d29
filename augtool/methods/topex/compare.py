"""``explore --compare``: what became of the earlier run's chosen cluster after
retraining (TopEx's Fig. 4): are its members now classified correctly, and does a
cluster of mistakes still hold them?"""

from __future__ import annotations

from collections import Counter
from typing import Any

from augtool.errors import AugtoolError
from augtool.methods.topex.store import SavedExploration

#: A cluster "persists" when one cluster of mistakes of the new run holds at least this
#: share of the old cluster's members.
PERSIST_SHARE = 0.5


def compare_runs(
    previous: SavedExploration,
    points: list[dict[str, Any]],
    clusters: list[dict[str, Any]],
) -> dict[str, Any]:
    """Follow the previous chosen cluster's members into the new run's points."""
    chosen = previous.chosen_id()
    if chosen is None:
        raise AugtoolError(
            f"--compare {previous.folder}: that run chose no cluster (it found no mistakes)"
        )
    old = previous.cluster(chosen)
    assert old is not None
    by_id = {p["id"]: p for p in points}
    members = [m for m in old["members"] if m in by_id]
    if not members:
        raise AugtoolError(
            f"--compare {previous.folder}: none of its cluster's rows are in this data "
            "(compare runs over the same file)"
        )
    was_wrong = [m for m in old["wrong_members"] if m in by_id]
    now_correct = sum(1 for m in members if by_id[m]["correct"])
    fixed = sum(1 for m in was_wrong if by_id[m]["correct"])
    info = {c["id"]: c for c in clusters}
    landing = Counter(by_id[m]["cluster"] for m in members)
    where = [
        {
            "cluster": cluster_id,
            "rows": count,
            "mistaken": bool(info[cluster_id]["mistaken"]) if cluster_id in info else False,
            "name": info[cluster_id]["name"] if cluster_id in info else "",
        }
        for cluster_id, count in landing.most_common()
    ]
    holders = [w for w in where if w["mistaken"] and w["rows"] >= PERSIST_SHARE * len(members)]
    dissolved = not holders
    verdict = (
        f"cluster {chosen} ({old['name']!r}) dissolved: {now_correct}/{len(members)} of its "
        f"rows are now correct"
        if dissolved
        else f"cluster {chosen} ({old['name']!r}) persists as cluster {holders[0]['cluster']} "
        f"({holders[0]['rows']}/{len(members)} of its rows); {now_correct} now correct"
    )
    return {
        "previous": str(previous.folder),
        "cluster": chosen,
        "name": old["name"],
        "members": len(members),
        "missing": len(old["members"]) - len(members),
        "error_rate_before": old["error_rate"],
        "error_rate_after": round(1 - now_correct / len(members), 6),
        "now_correct": now_correct,
        "was_wrong": len(was_wrong),
        "fixed": fixed,
        "dissolved": dissolved,
        "where": where,
        "verdict": verdict,
    }

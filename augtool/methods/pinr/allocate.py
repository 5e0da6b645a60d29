"""How many condensed rows each label gets."""

from __future__ import annotations

from collections.abc import Mapping

from augtool.errors import OptionError


def allocate(counts: Mapping[str, int], m: int, *, even: bool = False) -> dict[str, int]:
    """Split ``m`` rows across labels: in proportion to their sizes (largest remainder) or
    evenly, at least one each and never more than a label has."""
    total = sum(counts.values())
    if m > total:
        raise OptionError("m", f"is {m} but the data has only {total} rows")
    if m < len(counts):
        raise OptionError(
            "m",
            f"is {m} but class-wise condensation needs at least one row for each of the "
            f"{len(counts)} labels (use --no-class-wise to ignore labels)",
        )
    labels = sorted(counts)
    if even:
        share = {label: m / len(labels) for label in labels}
    else:
        share = {label: m * counts[label] / total for label in labels}
    out = {label: max(1, min(counts[label], int(share[label]))) for label in labels}
    # hand out what is left by largest remainder, taking back any excess the floor of 1 made
    while sum(out.values()) < m:
        room = [label for label in labels if out[label] < counts[label]]
        best = max(room, key=lambda label: (share[label] - out[label], -labels.index(label)))
        out[best] += 1
    while sum(out.values()) > m:
        spare = [label for label in labels if out[label] > 1]
        worst = min(spare, key=lambda label: (share[label] - out[label], labels.index(label)))
        out[worst] -= 1
    return out

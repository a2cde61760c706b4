"""Group dataset sizes into padded buckets: one compiled program per bucket."""
from __future__ import annotations

from typing import NamedTuple, Sequence


class Bucket(NamedTuple):
    sizes: tuple[int, ...]  # the real sizes T in this bucket, ascending
    padded: int  # every run of the bucket is padded to this many rows


def plan_buckets(sizes: Sequence[int], max_pad_ratio: float = 1.3) -> list[Bucket]:
    """Fewest buckets whose padded rows total at most ``max_pad_ratio`` times the real rows.

    Exact dynamic programme over the sorted sizes (a bucket is a contiguous run of
    them, padded to its largest); among plans with the fewest buckets it keeps the one
    with the least padding.
    """
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"dataset sizes must be positive integers, got {sizes!r}")
    if max_pad_ratio < 1.0:
        raise ValueError(f"max_pad_ratio must be >= 1, got {max_pad_ratio!r}")
    L, real = len(sizes), sum(sizes)
    inf = float("inf")
    # best[b][j]: least padded rows covering sizes[:j] with b buckets; cut[b][j]: its last start.
    best = [[inf] * (L + 1) for _ in range(L + 1)]
    cut = [[0] * (L + 1) for _ in range(L + 1)]
    best[0][0] = 0
    for b in range(1, L + 1):
        for j in range(1, L + 1):
            for i in range(j):
                cost = best[b - 1][i] + (j - i) * sizes[j - 1]
                if cost < best[b][j]:
                    best[b][j], cut[b][j] = cost, i
        if best[b][L] <= max_pad_ratio * real + 1e-9:
            buckets, j = [], L
            for bb in range(b, 0, -1):
                i = cut[bb][j]
                buckets.append(Bucket(tuple(sizes[i:j]), sizes[j - 1]))
                j = i
            return buckets[::-1]
    raise AssertionError("one bucket per size always has ratio 1")


def pad_ratio(buckets: Sequence[Bucket]) -> float:
    """Padded rows over real rows."""
    padded = sum(len(b.sizes) * b.padded for b in buckets)
    return padded / sum(sum(b.sizes) for b in buckets)

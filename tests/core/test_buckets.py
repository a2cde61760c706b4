import itertools

import pytest

from jaxmem.buckets import pad_ratio, plan_buckets


def _brute_force_fewest(sizes, ratio):
    sizes = sorted(sizes)
    for b in range(1, len(sizes) + 1):
        for cuts in itertools.combinations(range(1, len(sizes)), b - 1):
            edges = (0, *cuts, len(sizes))
            padded = sum((j - i) * sizes[j - 1] for i, j in zip(edges, edges[1:]))
            if padded <= ratio * sum(sizes):
                return b


@pytest.mark.parametrize("sizes", [[3, 5, 9, 15, 25, 43, 73, 124, 211, 358, 609, 1037, 1763, 3000],
                                   [1, 2, 3, 100, 101, 5000], [7], [10, 11, 12, 13, 100, 130]])
def test_buckets_cover_each_size_once_within_ratio_and_fewest(sizes):
    buckets = plan_buckets(sizes, 1.3)
    assert sorted(s for b in buckets for s in b.sizes) == sorted(sizes)
    assert all(b.padded == max(b.sizes) for b in buckets)
    assert pad_ratio(buckets) <= 1.3
    assert len(buckets) == _brute_force_fewest(sizes, 1.3)


def test_bad_sizes():
    with pytest.raises(ValueError, match="-4"):
        plan_buckets([3, -4])

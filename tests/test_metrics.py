"""pass@k against brute force. Run: pytest tests/test_metrics.py -q"""

from __future__ import annotations

from itertools import combinations

from hypothesis import given
from hypothesis import strategies as st

from tinyzero.metrics import pass_at_k


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_brute_force(args: tuple[int, int, int]) -> None:
    n, c, k = args
    samples = [1] * c + [0] * (n - c)
    subsets = list(combinations(range(n), k))
    brute = sum(any(samples[i] for i in s) for s in subsets) / len(subsets)
    assert abs(pass_at_k(n, c, k) - brute) < 1e-12

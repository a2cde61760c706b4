import numpy as np
import pytest

from jaxmem import data


def test_statistics(key):
    n, S = 400, 0.95
    x = np.asarray(data.sparse_features(key, 2000, n, S, normalize=False))
    assert x.shape == (2000, n) and x.dtype == np.float32
    frac = (x != 0).mean()
    assert abs(frac - (1 - S)) < 0.003  # binomial sd ~ 0.0005
    nz = x[x != 0]
    assert nz.min() >= 0 and nz.max() < 1 and abs(nz.mean() - 0.5) < 0.02


def test_rows_unit_norm_and_zero_rows_stay_zero(key):
    x = np.asarray(data.sparse_features(key, 3000, 10, 0.9))
    norms = np.linalg.norm(x, axis=1)
    zero = norms == 0
    assert 0.25 < zero.mean() < 0.45  # P(all zero) = 0.9^10 = 0.35
    np.testing.assert_allclose(norms[~zero], 1.0, rtol=1e-5)
    assert np.all(x[zero] == 0)


def test_sparse_form_equals_dense_and_prefix_property(key):
    dense = data.sparse_features(key, 300, 200, 0.97)
    rows = data.sparse_rows(key, 300, 200, 0.97, chunk=64)
    assert rows.indices.shape == (300, data.max_nonzeros(200, 0.97))
    np.testing.assert_allclose(np.asarray(data.to_dense(rows, 200)), np.asarray(dense), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(data.sparse_features(key, 100, 200, 0.97)), np.asarray(dense[:100]))


def test_too_few_slots_are_widened_not_truncated(key):
    rows = data.sparse_rows(key, 50, 100, 0.5, k=2)
    dense = data.sparse_features(key, 50, 100, 0.5)
    assert rows.indices.shape[1] > 2
    np.testing.assert_allclose(np.asarray(data.to_dense(rows, 100)), np.asarray(dense), rtol=1e-6)


@pytest.mark.parametrize("args, bad", [((0, 10, 0.5), "0"), ((-3, 10, 0.5), "-3"), ((5, 0, 0.5), "0"),
                                       ((5, 10, 1.0), "1.0"), ((5, 10, -0.1), "-0.1")])
def test_bad_input_names_the_value(key, args, bad):
    with pytest.raises(ValueError, match=bad):
        data.sparse_features(key, *args)


def test_identity():
    np.testing.assert_array_equal(np.asarray(data.identity(7)), np.eye(7))
    with pytest.raises(ValueError, match="-1"):
        data.identity(-1)

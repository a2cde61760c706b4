"""The quick presets' headline results (minutes each): run with ``pytest -m slow``."""
import json

import numpy as np
import pytest

from jaxmem import results
from jaxmem.experiments import smdd


@pytest.mark.slow
def test_smdd_quick_shows_the_three_regimes(tmp_path):
    summary = smdd.run("quick", tmp_path)
    r = summary["results"]
    by_T = r["by_T"]
    assert summary["wall_seconds"] < 300
    assert r["test_loss_peak_is_interior"] and r["test_loss_lower_at_largest_T"]
    assert by_T[-1]["n_learned_features"] == 5  # the pentagon
    assert abs(by_T[-1]["W_norm"] - np.sqrt(5)) < 0.5
    for row in by_T[:4]:  # memorising: mean data dimensionality m / T
        assert abs(row["data_dim_mean"] * row["T"] / 2 - 1) < 0.02
    assert 0 < by_T.index(max(by_T, key=lambda x: x["W_norm"])) < len(by_T) - 1
    assert json.loads((tmp_path / "summary.json").read_text())["results"]["by_T"] == json.loads(json.dumps(by_T))
    assert results.load_arrays(tmp_path / "runs.npz")["W"].shape[0] == len(by_T)

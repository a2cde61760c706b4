"""The quick presets' headline results (minutes each): run with ``pytest -m slow``."""
import json

import numpy as np
import pytest

import jaxmem
from jaxmem import studies
from jaxmem.store import open_parts


@pytest.mark.slow
def test_smdd_quick_shows_the_three_regimes(tmp_path):
    summary = studies.reproduce("smdd", "quick", tmp_path)
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
    manifest, parts = open_parts(tmp_path)
    assert manifest["status"] == "finished" and set(parts) == {"", "infinite"}
    assert parts[""]["W"].shape[0] == len(by_T) and jaxmem.load(tmp_path).sizes["T"] == len(by_T)
    assert r["infinite"]["n_diverged"] == 0


@pytest.mark.slow
def test_modular_addition_quick_shows_the_plateau(tmp_path):
    """The explorable's picture on its own setting: memorised early, generalised tens of
    thousands of steps later, with a few key frequencies; the unfactored model never."""
    r = studies.reproduce("modular-addition", "quick", tmp_path)["results"]
    factored = r["factored"]
    assert factored["generalised"] > len(factored["runs"]) / 2
    assert factored["median_generalise_over_memorise"] >= 10
    for run in factored["runs"]:
        if run["generalise_step"] is not None:
            assert 2 <= len(run["key_frequencies"]) <= 6 and run["key_share"] > 0.9
            assert run["plateau_steps"] >= 5000
    assert r["unfactored"]["generalised"] == 0  # docs/sources.md §3: the unfactored model does not
    square = np.array(r["constructed"]["square_accuracy"])
    assert np.all(square[:, np.array(r["constructed"]["n_neurons"]) > 4] == 1.0)


@pytest.mark.slow
def test_parity_grid_quick_weight_decay_orders_the_outcomes(tmp_path):
    """The explorable's story: too little decay memorises, more groks or generalises, too
    much learns nothing."""
    r = studies.reproduce("parity-grid", "quick", tmp_path)["results"]
    assert sum(r["outcomes"].values()) == r["n_runs"] == 54
    counts = np.array(r["outcome_grid"])  # [train, hidden, wd, class]
    by_wd = counts.sum((0, 1))
    assert by_wd[0, 2] > by_wd[0, :2].sum()  # smallest decay: mostly memorise only
    assert by_wd[1, 0] > 0  # middle decay: some grokking
    assert by_wd[-1, 3] > by_wd[0, 3]  # largest decay: more learn nothing

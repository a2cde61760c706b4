"""``dstar-smdd``: D* of an smdd sweep trained as a part, or read from a saved smdd run."""
import numpy as np
import pytest

import jaxmem
from jaxmem import cli, store, studies
from jaxmem.studies.dstar import smdd as dstar_smdd
from jaxmem.studies.smdd import smdd


def _no_seconds(results: dict) -> dict:
    return {k: v for k, v in results.items() if k not in ("exact_seconds", "solve_seconds")}


def test_trains_its_sweep_or_reads_a_saved_one(tiny_smdd, tmp_path, monkeypatch):
    own = studies.reproduce("dstar-smdd", "tiny", tmp_path / "own")
    assert list(own["parts"]) == ["smdd", "dstar"] and own["n_runs"] == 4
    assert list(own["config"]["Sweep"]["T"]) == [3, 8] and "infinite_batch" not in own["config"]
    _, parts = store.open_parts(tmp_path / "own")
    hidden = parts["smdd"]["hidden"][:, 0, 0, 0]  # [T, seed, example, neuron]
    exact = parts["dstar"]["exact"]
    by_T = own["results"]["by_T"]
    assert [r["T"] for r in by_T] == [3, 8] and own["results"]["all_converged"]
    for i, row in enumerate(by_T):
        T = row["T"]
        assert row["dstar_mean"] == pytest.approx(exact[i][:, :T].mean(), rel=1e-6)
        assert np.all(exact[i][:, T:] == 0)
        for check in row["sum_check"]:
            h = hidden[i, check["seed"], :T].astype(np.float64)
            assert check["rank"] == np.linalg.matrix_rank(h)
            assert abs(check["total"] - check["rank"]) < 1e-3 and check["converged"]
            assert check["total"] == pytest.approx(exact[i, check["seed"]].sum(), abs=1e-4)
        for s in range(2):  # quantiles in units of m / T, by sorting
            ranked = np.sort(exact[i, s, :T].astype(np.float64)) * T / 2
            for q, key in ((0.1, "q10_over_m_over_T"), (0.5, "median_over_m_over_T"), (0.9, "q90_over_m_over_T")):
                pos = q * (T - 1)
                lo, frac = int(np.floor(pos)), pos - np.floor(pos)
                want = ranked[lo] + frac * (ranked[min(lo + 1, T - 1)] - ranked[lo])
                assert row[key][s] == pytest.approx(want, rel=1e-5)
        assert row["train_loss"] == pytest.approx(parts["smdd"]["train_loss"][i, 0, 0, 0].tolist(), rel=1e-6)
    res, zero = own["results"], smdd.zero_output_loss(tiny_smdd[0], tiny_smdd[1].sparsity)
    assert res["flat_T"] == [r["T"] for r in by_T if min(r["q10_over_m_over_T"]) >= dstar_smdd.FLAT_Q10]
    assert res["memorised_T"] == [r["T"] for r in by_T if max(r["train_loss"]) < 0.01 * zero]
    assert res["flat_not_memorised_T"] == [t for t in res["flat_T"] if t not in res["memorised_T"]]
    assert (tmp_path / "own" / "dstar_levels.png").stat().st_size > 10_000
    ds = jaxmem.load(tmp_path / "own")
    assert ds["dstar/exact"].dims == ("T", "data_seed", "example") and ds["dstar/rank"].dims == ("T", "data_seed")
    assert ds["smdd/hidden"].dims[-2:] == ("example", "neuron") and not any("_dim" in d for d in ds.dims)
    assert (tmp_path / "own" / "dstar_curves.png").stat().st_size > 10_000
    assert not (tmp_path / "own" / "test_loss.png").exists()  # the sweep's own figures are smdd's

    # --from a saved smdd run (no infinite-data line: not needed): the same sweep, so
    # the same D*; the sweep is not trained again
    monkeypatch.setitem(smdd.PRESETS, "tiny-finite", tiny_smdd[:2] + (None,))
    studies.reproduce("smdd", "tiny-finite", tmp_path / "sweep")
    read = studies.reproduce("dstar-smdd", "tiny", tmp_path / "read", source=tmp_path / "sweep")
    assert list(read["parts"]) == ["dstar"] and read["n_runs"] == 4
    assert read["config"]["options"] == {"source": str(tmp_path / "sweep")}
    assert _no_seconds(read["results"]) == _no_seconds(own["results"])
    _, read_parts = store.open_parts(tmp_path / "read")
    assert read_parts["dstar"].info["smdd"]["Sweep"]["T"] == [3, 8]
    np.testing.assert_array_equal(read_parts["dstar"]["exact"], exact)
    (tmp_path / "read" / "dstar_curves.png").unlink()
    assert cli.main(["plot", str(tmp_path / "read")]) == 0
    assert (tmp_path / "read" / "dstar_curves.png").stat().st_size > 10_000

    with pytest.raises(ValueError, match="holds a 'dstar-smdd' run, not an smdd run"):
        studies.reproduce("dstar-smdd", "tiny", tmp_path / "again", source=tmp_path / "own")
    with pytest.raises(ValueError, match="not a saved smdd run"):
        studies.reproduce("dstar-smdd", "tiny", tmp_path / "again2", source=tmp_path / "nothing")
    with pytest.raises(ValueError, match="--set and --seeds do not apply with --from"):
        studies.reproduce("dstar-smdd", "tiny", tmp_path / "again3", source=tmp_path / "sweep",
                          overrides={"steps": "20"})
    with pytest.raises(ValueError, match="unknown field 'infinite_batch'"):
        studies.reproduce("dstar-smdd", "tiny", tmp_path / "again4", overrides={"infinite_batch": "20"})
    assert cli.main(["reproduce", "smdd", "--from", str(tmp_path / "sweep"), "--out", str(tmp_path / "x")]) == 2


def test_resume_after_a_kill_computes_only_the_dstar_part(tiny_smdd, tmp_path, monkeypatch):
    real, real_sweep = dstar_smdd.dstar_part, dstar_smdd.sweep_part

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dstar_smdd, "dstar_part", killed)
    with pytest.raises(KeyboardInterrupt):  # killed after the sweep was saved
        studies.reproduce("dstar-smdd", "tiny", tmp_path)
    monkeypatch.setattr(dstar_smdd, "dstar_part", real)
    with pytest.raises(ValueError, match="differing fields: Sweep.data_seeds: 2 -> 3"):
        studies.reproduce("dstar-smdd", "tiny", tmp_path, seeds=3, resume=True)
    monkeypatch.setattr(dstar_smdd, "sweep_part", killed)  # saved: must not train again
    again = studies.reproduce("dstar-smdd", "tiny", tmp_path, resume=True)
    assert again["resumed_parts"] == ["smdd"]
    monkeypatch.setattr(dstar_smdd, "sweep_part", real_sweep)
    whole = studies.reproduce("dstar-smdd", "tiny", tmp_path / "whole")
    assert _no_seconds(again["results"]) == _no_seconds(whole["results"])

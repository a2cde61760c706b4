"""``--set FIELD=VALUE``: presets.override on the real presets, and each study recording it."""
import dataclasses
import json

import pytest

from jaxmem import presets, results
from jaxmem.studies.identity import opt_failure
from jaxmem.studies.smdd import smdd
from jaxmem.sweep import Sweep
from jaxmem.train import TrainConfig


def test_override_sets_fields_of_a_real_preset():
    quick = opt_failure.PRESETS["quick"]
    cfg = presets.override(quick, {"steps": "300", "lrs": "1e-3,1e-2", "inits": "xavier", "sym_gd_lr": "0.5"})
    assert (cfg.steps, cfg.lrs, cfg.inits, cfg.sym_gd_lr) == (300, (1e-3, 1e-2), ("xavier",), 0.5)
    assert cfg.seeds == quick.seeds and quick.steps != 300  # the rest as the preset, which is untouched
    assert presets.override(quick, {}) is quick and presets.override(quick, None) is quick


def test_override_looks_each_name_up_in_every_member_of_a_tuple():
    cfg, sweep = presets.override(smdd.PRESETS["quick"], {"steps": "60", "T": "(3,10,30)", "data_seeds": "1",
                                                          "hidden_relu": "true", "sparsity": "0.9"})
    assert isinstance(cfg, TrainConfig) and isinstance(sweep, Sweep)
    assert (cfg.steps, cfg.hidden_relu, sweep.T, sweep.data_seeds, sweep.sparsity) == (60, True, (3, 10, 30), 1, 0.9)
    # a non-dataclass member by the name given to it
    _, _, ms = presets.override((cfg, sweep, (1, 2)), {"hidden_sizes": "1,3,5"}, names={2: "hidden_sizes"})
    assert ms == (1, 3, 5)


@pytest.mark.parametrize("text, want", [("3,10,30", (3, 10, 30)), ("(3,10,30)", (3, 10, 30)), ("[3, 10]", (3, 10)),
                                        ("7", (7,)), ("7,", (7,)), ("1e3", (1000,))])
def test_tuple_of_ints(text, want):
    assert presets.override(smdd.PRESETS["quick"], {"T": text})[1].T == want


def test_tuples_of_floats_strings_and_nested_tuples():
    q = opt_failure.PRESETS["quick"]
    assert presets.override(q, {"escape_bias": "-0.1,0,0.2"}).escape_bias == (-0.1, 0.0, 0.2)
    assert presets.override(q, {"inits": "xavier,normal"}).inits == ("xavier", "normal")
    assert presets.override(q, {"optimizers": "(('adamw', 0.01), ('adam', 0.0))"}).optimizers == (
        ("adamw", 0.01), ("adam", 0.0))
    assert presets.override(q, {"optimizers": "('adam', 0.0)"}).optimizers == (("adam", 0.0),)


def test_none_bool_and_nested_fields():
    from jaxmem.studies.dstar import mnist
    from jaxmem.studies.grokking import lr

    p = presets.override(mnist.PRESETS["quick"], {"target_n": "100", "x64": "false"})
    assert (p.target_n, p.x64) == (100, False)
    assert presets.override(p, {"target_n": "none"}).target_n is None
    g = presets.override(lr.PRESETS["quick"], {"model.steps": "100", "model.precision": "source"})
    assert (g.model.steps, g.model.precision) == (100, "source") and g.grids == lr.PRESETS["quick"].grids


def test_unknown_field_is_named_and_the_known_ones_listed():
    with pytest.raises(ValueError, match=r"unknown field 'stepz'.*known: .*steps"):
        presets.override(opt_failure.PRESETS["quick"], {"stepz": "3"})
    with pytest.raises(ValueError, match=r"unknown field 'nope'.*n_features.*sparsity"):
        presets.override(smdd.PRESETS["quick"], {"nope": "3"})
    from jaxmem.studies.grokking import lr
    with pytest.raises(ValueError, match=r"unknown field 'model.stepz'.*model.steps"):
        presets.override(lr.PRESETS["quick"], {"model.stepz": "3"})


def test_ambiguous_name_is_an_error():
    a, b = TrainConfig(n_features=5), TrainConfig(n_features=6)
    with pytest.raises(ValueError, match="steps: ambiguous"):
        presets.override((a, b), {"steps": "3"})


@pytest.mark.parametrize("field, value, match", [
    ("steps", "abc", "steps=abc: cannot read 'abc' as int"),
    ("steps", "-3", "steps=-3: steps must be a positive integer, got -3"),  # OptFailureConfig's own check
    ("steps", "2.5", "steps=2.5"),
    ("lrs", "a,b", "lrs=a,b"),
    ("lrs", "-1", "lrs=-1: lrs must be positive"),
    ("inits", "foo", "inits=foo: inits must be"),
    ("seeds", "none", "seeds=none: seeds cannot be None"),
])
def test_bad_value_names_the_field_and_the_value(field, value, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        presets.override(opt_failure.PRESETS["quick"], {field: value})


def test_bad_value_in_a_tuple_preset():
    with pytest.raises(ValueError, match="sparsity=1.5: sparsity must lie in"):  # Sweep's own check
        presets.override(smdd.PRESETS["quick"], {"sparsity": "1.5"})
    with pytest.raises(ValueError, match="hidden_relu=maybe: cannot read 'maybe' as bool"):
        presets.override(smdd.PRESETS["quick"], {"hidden_relu": "maybe"})


def test_parse_assignments():
    assert presets.parse_assignments(["steps=3", "T=3,10", "s = x=y"]) == {"steps": "3", "T": "3,10", "s": "x=y"}
    for bad, match in ((["steps"], "expected FIELD=VALUE"), (["=3"], "expected FIELD=VALUE"),
                       (["a=1", "a=2"], "given twice")):
        with pytest.raises(ValueError, match=match):
            presets.parse_assignments(bad)


def test_from_record_rebuilds_a_config_from_its_json():
    from jaxmem.studies.grokking import lr

    for cfg in (opt_failure.PRESETS["quick"], lr.PRESETS["quick"]):
        record = json.loads(json.dumps({**dataclasses.asdict(cfg), "overrides": {"x": "1"}, "extra": 3}, default=float))
        assert presets.from_record(type(cfg), record) == cfg


class _Stop(Exception):
    pass


def _configs(monkeypatch, name, target, attr, overrides, tmp_path, position):
    """The config dict that study ``name`` checks on resume, with and without ``overrides``
    (its training stopped before it starts)."""
    from jaxmem import studies

    seen = []

    def grab(*args, **kwargs):
        seen.append(json.loads(json.dumps(args[position], default=float)))
        raise _Stop

    monkeypatch.setattr(target, attr, grab)
    module = studies.get(name)
    for o in (None, overrides):
        with pytest.raises(_Stop):
            module.run("quick", tmp_path, resume=True, overrides=o)
    return seen


@pytest.mark.parametrize("name, where, overrides", [
    ("smdd-phase", "smdd.phase", {"steps": "7"}), ("smdd-wd", "smdd.settings", {"values": "0,1"}),
    ("smdd-steps", "smdd.settings", {"eps": "1e-7"}), ("smdd-sparsity", "smdd.settings", {"steps": "7"}),
    ("smdd-repeat", "smdd.repeat", {"repeats": "1,2"}), ("smdd-repeat-slot", "smdd.repeat", {"steps": "7"}),
    ("smdd-variants", "smdd.variants", {"b1": "0.8"}), ("smdd-modelwise", "smdd.modelwise", {"hidden_sizes": "1,2"}),
    ("modular-addition", None, {"steps": "7"}), ("parity-grid", None, {"weight_decays": "0.1"}),
    ("grokking-lr", None, {"model.steps": "7"}), ("opt-failure", None, {"sym_gd_lr": "0.3"}),
])
def test_every_study_records_its_overrides_in_the_config_it_resumes_by(monkeypatch, tmp_path, name, where, overrides):
    import importlib

    if where is None:  # results.resume_arrays(out, config, resume)
        plain, changed = _configs(monkeypatch, name, results, "resume_arrays", overrides, tmp_path, 1)
    else:  # run_variants(variants, out, config, resume, progress)
        target = importlib.import_module(f"jaxmem.studies.{where}")
        plain, changed = _configs(monkeypatch, name, target, "run_variants", overrides, tmp_path, 2)
    assert "overrides" not in plain and changed["overrides"] == overrides and changed != plain


def test_dstar_mnist_refuses_to_resume_with_overrides(monkeypatch, tmp_path):
    from jaxmem.studies.dstar import mnist

    p = mnist.PRESETS["quick"]
    pool = mnist.load_pool(p)
    results.save_json(tmp_path / "summary.json", {"config": mnist.config_dict(p, pool.info), "results": {}})

    def stop(*args):
        raise _Stop

    monkeypatch.setitem(mnist.PART_FNS, p.parts[0], stop)
    with pytest.raises(_Stop):  # same config: it goes on to train the first part
        mnist.run("quick", tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="another config"):
        mnist.run("quick", tmp_path, resume=True, progress=False, overrides={"ae_steps": "3"})
    with pytest.raises(ValueError, match="ae_steps=0"):
        mnist.run("quick", tmp_path, overrides={"ae_steps": "0"})

"""``--set FIELD=VALUE``: presets.override on the real presets, and each study recording it."""
import dataclasses
import json

import pytest

from jaxmem import presets, store, studies
from jaxmem.studies import protocol
from jaxmem.studies.smdd import smdd
from jaxmem.studies.smdd.sweep import Sweep
from jaxmem.train import TrainConfig


def test_override_sets_fields_of_a_real_preset():
    quick = studies.get("opt-failure").PRESETS["quick"]
    cfg = presets.override(quick, {"steps": "300", "lrs": "1e-3,1e-2", "inits": "xavier", "sym_gd_lr": "0.5"})
    assert (cfg.steps, cfg.lrs, cfg.inits, cfg.sym_gd_lr) == (300, (1e-3, 1e-2), ("xavier",), 0.5)
    assert cfg.seeds == quick.seeds and quick.steps != 300  # the rest as the preset, which is untouched
    assert presets.override(quick, {}) is quick and presets.override(quick, None) is quick


def test_override_looks_each_name_up_in_every_member_of_a_tuple():
    cfg, sweep, _ = presets.override(smdd.PRESETS["quick"], {"steps": "60", "T": "(3,10,30)", "data_seeds": "1",
                                                             "hidden_relu": "true", "sparsity": "0.9"},
                                     names=smdd.SET_NAMES)
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
    q = studies.get("opt-failure").PRESETS["quick"]
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
        presets.override(studies.get("opt-failure").PRESETS["quick"], {"stepz": "3"})
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
        presets.override(studies.get("opt-failure").PRESETS["quick"], {field: value})


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

    for cfg in (studies.get("opt-failure").PRESETS["quick"], lr.PRESETS["quick"]):
        record = json.loads(json.dumps({**dataclasses.asdict(cfg), "overrides": {"x": "1"}, "extra": 3}, default=float))
        assert presets.from_record(type(cfg), record) == cfg


@pytest.mark.parametrize("name", sorted(studies.REGISTRY))
def test_every_experiment_follows_the_protocol_and_its_config_round_trips(name):
    """Each experiment declares the protocol's names; each preset's config, saved as JSON
    and read back, is the same config (so ``plot`` and ``--resume`` see what ran)."""
    module = studies.get(name)
    for attr in ("DESCRIPTION", "PRESETS", "SEEDS", "run", "summarize", "draw"):
        assert hasattr(module, attr), f"{name} lacks {attr}"
    assert "quick" in module.PRESETS
    for preset, cfg in module.PRESETS.items():
        saved = json.loads(json.dumps(store.strict_json(protocol.record(module, cfg))))
        back = protocol.rebuild(module, preset, saved)
        assert json.loads(json.dumps(store.strict_json(protocol.record(module, back)))) == saved, (name, preset)
        if module.SEEDS is not None:
            assert protocol.record(module, protocol.configure(module, preset, seeds=3)) != saved

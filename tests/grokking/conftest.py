"""Tiny presets of the grokking experiments, trained in seconds: the same shapes in every
test, so that their programs compile once per test session."""
import dataclasses

import pytest

from jaxmem.studies.grokking import lr as grokking_lr
from jaxmem.studies.grokking import modular_addition, parity_grid

TINY_PARITY = parity_grid.ParityConfig(train_sizes=(20, 30), hidden_sizes=(4, 6), weight_decays=(0.0, 1.0), seeds=2,
                                       steps=20, n_history=4, n_bits=6, n_relevant=2, n_test=32)
TINY_MODULAR = modular_addition.ModularConfig(p=7, n_embed=6, n_hidden=8, seeds=2, steps=20, n_history=4,
                                              construct_p=(7,), construct_n=(4, 5))
#: two grids of 4 runs of the same model: one compiled program
TINY_LR = grokking_lr.GrokLrConfig(
    model=dataclasses.replace(TINY_MODULAR, seeds=1, precision="float32"),
    grids=(grokking_lr.LrGrid("adam", (1e-3, 1e-2), p=7, weight_decays=(0.0, 1.0)),
           grokking_lr.LrGrid("scale", (1e-2,), p=7, weight_decays=(0.0,), init_scales=(0.1, 0.3, 1.0, 3.0))))


@pytest.fixture
def tiny_parity(monkeypatch):
    monkeypatch.setitem(parity_grid.PRESETS, "tiny", TINY_PARITY)
    return TINY_PARITY


@pytest.fixture
def tiny_modular(monkeypatch):
    monkeypatch.setitem(modular_addition.PRESETS, "tiny", TINY_MODULAR)
    return TINY_MODULAR


@pytest.fixture
def tiny_lr(monkeypatch):
    monkeypatch.setitem(grokking_lr.PRESETS, "tiny", TINY_LR)
    return TINY_LR

"""``smdd-repeat-slot``: see ``jaxmem.studies.smdd.repeat`` (``run_slot``)."""
from jaxmem.studies.smdd.repeat import SLOT_PRESETS, draw_slot, run_slot

DESCRIPTION = "SMDD, Jermyn's run: does a point repeated R times take one of the pentagon's 5 slots?"
PRESETS = SLOT_PRESETS


def run(preset_name, out, seeds=None, resume=False, progress=None, overrides=None):
    return run_slot(preset_name, out, seeds, resume, progress, overrides=overrides)


def draw(out, summary=None):
    draw_slot(out, summary)

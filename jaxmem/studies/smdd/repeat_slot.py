"""``smdd-repeat-slot``: see ``jaxmem.studies.smdd.repeat`` (its training, ``summarize_slot``
and ``draw_slot``)."""
from jaxmem.studies.smdd import repeat

DESCRIPTION = "SMDD, Jermyn's run: does a point repeated R times take one of the pentagon's 5 slots?"
PRESETS = repeat.SLOT_PRESETS
SEEDS, SET_NAMES = repeat.SEEDS, repeat.SET_NAMES
record = repeat.record_slot
run = repeat.run
summarize = repeat.summarize_slot
draw = repeat.draw_slot

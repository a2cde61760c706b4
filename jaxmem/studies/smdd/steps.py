"""``smdd-steps``: see ``jaxmem.studies.smdd.settings``."""
from functools import partial

from jaxmem.studies.smdd import settings

DESCRIPTION = settings.SETTINGS["smdd-steps"].description
PRESETS = settings.SETTINGS["smdd-steps"].presets
SEEDS, SET_NAMES = settings.SEEDS, settings.SET_NAMES
run = partial(settings.run, "smdd-steps")
summarize = partial(settings.summarize, "smdd-steps")
draw = partial(settings.draw, "smdd-steps")

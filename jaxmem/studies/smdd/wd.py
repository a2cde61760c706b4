"""``smdd-wd``: see ``jaxmem.studies.smdd.settings``."""
from functools import partial

from jaxmem.studies.smdd import settings

DESCRIPTION = settings.SETTINGS["smdd-wd"].description
PRESETS = settings.SETTINGS["smdd-wd"].presets
SEEDS, SET_NAMES = settings.SEEDS, settings.SET_NAMES
run = partial(settings.run, "smdd-wd")
summarize = partial(settings.summarize, "smdd-wd")
draw = partial(settings.draw, "smdd-wd")

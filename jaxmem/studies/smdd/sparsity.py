"""``smdd-sparsity``: see ``jaxmem.studies.smdd.settings``."""
from functools import partial

from jaxmem.studies.smdd import settings

DESCRIPTION = settings.SETTINGS["smdd-sparsity"].description
PRESETS = settings.SETTINGS["smdd-sparsity"].presets
SEEDS, SET_NAMES = settings.SEEDS, settings.SET_NAMES
run = partial(settings.run, "smdd-sparsity")
summarize = partial(settings.summarize, "smdd-sparsity")
draw = partial(settings.draw, "smdd-sparsity")

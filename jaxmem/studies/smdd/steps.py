"""``smdd-steps``: see ``jaxmem.studies.smdd.settings``."""
from jaxmem.studies.smdd.settings import SETTINGS, draw_setting, run_setting

DESCRIPTION = SETTINGS["smdd-steps"].description
PRESETS = SETTINGS["smdd-steps"].presets


def run(preset_name, out, seeds=None, resume=False, progress=None, overrides=None):
    return run_setting("smdd-steps", preset_name, out, seeds, resume, progress, overrides=overrides)


def draw(out, summary=None):
    draw_setting("smdd-steps", out, summary)

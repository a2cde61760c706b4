"""``smdd-wd``: see ``jaxmem.experiments.smdd_settings``."""
from jaxmem.experiments.smdd_settings import SETTINGS, run_setting

DESCRIPTION = SETTINGS["smdd-wd"].description
PRESETS = SETTINGS["smdd-wd"].presets


def run(preset_name, out, seeds=None, resume=False, progress=None):
    return run_setting("smdd-wd", preset_name, out, seeds, resume, progress)

"""Training: one optimiser builder (``optim``), one step loop (``loop``), and the grid
trainer ``run_grid`` (``grid``) every study uses; ``relu`` trains the ReLU-output toy
model of SMDD and the identity study one run at a time on the same loop."""
from jaxmem.train.grid import GridResult, run_grid
from jaxmem.train.loop import Schedule, TrainState, history_stride, weighted_mean
from jaxmem.train.optim import Optim
from jaxmem.train.relu import (
                               Hyper,
                               Logged,
                               TrainConfig,
                               TrainResult,
                               advance,
                               finish,
                               fit,
                               init_state,
                               loss_fn,
                               optimizer,
                               train,
)

__all__ = ["GridResult", "Hyper", "Logged", "Optim", "Schedule", "TrainConfig", "TrainResult", "TrainState",
           "advance", "finish", "fit", "history_stride", "init_state", "loss_fn", "optimizer", "run_grid", "train",
           "weighted_mean"]

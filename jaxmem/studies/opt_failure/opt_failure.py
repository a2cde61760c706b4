"""``opt-failure``: the toy autoencoder ``ReLU(W^T W x + b)`` on ``X = I_n``, m = 2.

The "Optimization Failure" post (docs/sources.md §4) trains n = 7, m = 2 "for 25,000
epochs using AdamW" (full batch on ``I_7``, so 25,000 steps), shows one "Symmetric
Failure" (one column of W at 0, its bias at 1/n; "this is a local optimum"), says "There
are only a few ways optimization can fail for this toy model", and "I then trained the
autoencoder using Adam without any regularization, but the same optimization failure
occurred" (seed 004). It gives no failure rate, init, learning rate, schedule, weight
decay or seed count: every one of those settings here is ours (``OptFailureConfig``).

What this measures (ours): how often training misses the circle solution for each of
three common inits and two lrs, for AdamW and plain Adam side by side on the same inits
(``adam_vs_adamw`` in the summary); whether a failure is the "symmetric" one (a dead
column whose bias sits at 1/n); the exact construction; the no-bias 2m bound; which
perturbations escape the failure; and (``symmetric_state_test``) whether the symmetric
failure is a local minimum or a saddle, decided in float64.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from jaxmem import data, train
from jaxmem.studies.opt_failure import construct
from jaxmem.models import relu_output
from jaxmem.store import Part, on_grid
from jaxmem.studies.opt_failure import analysis as identity
from jaxmem.studies.opt_failure import figures
from jaxmem.validate import finite_values, one_of, positive_int

DESCRIPTION = ("Optimisation failure on the identity (n = 4..12, m = 2): failure rates by optimiser (AdamW, Adam), "
               "init and lr, classes, escape, minimum or saddle")

#: Named initialisations of ``W [m, n]`` (``b = 0`` for all). The post names no init: the
#: three are ours, chosen as common defaults.
#: ``xavier``: Xavier-normal, std ``sqrt(2 / (m + n))``; this is ``relu_output.init`` and
#: ``torch.nn.init.xavier_normal_`` on an ``[m, n]`` tensor (fan_in n, fan_out m). (The
#: toy-model notebooks call ``xavier_normal_`` on ``W [instances, n, m]``, where torch
#: takes fan_in = n m and fan_out = instances m: std ``sqrt(2 / (m (n + instances)))``.)
#: ``torch_linear``: ``U(-1/sqrt(n), 1/sqrt(n))``, the default weight of
#: ``torch.nn.Linear(n, m)`` (``kaiming_uniform_(a=sqrt(5))`` on ``[m, n]``: gain
#: ``sqrt(2 / (1 + a^2)) = sqrt(1/3)``, bound ``sqrt(3) gain / sqrt(fan_in) = 1 / sqrt(n)``;
#: a bare ``nn.Parameter(torch.empty(m, n))`` has no init at all). ``normal``: N(0, 1),
#: ``torch.randn`` / ``nn.init.normal_``'s default.
INITS = ("xavier", "torch_linear", "normal")


def init_moments(name: str, n_features: int, n_hidden: int = 2) -> dict:
    """Closed forms of an init's entries: ``std``, and ``bound`` (uniform) or None."""
    if name == "xavier":
        return {"std": math.sqrt(2.0 / (n_hidden + n_features)), "bound": None}
    if name == "torch_linear":
        bound = 1.0 / math.sqrt(n_features)
        return {"std": bound / math.sqrt(3.0), "bound": bound}
    if name == "normal":
        return {"std": 1.0, "bound": None}
    raise ValueError(f"init must be one of {INITS}, got {name!r}")


def init_W(name: str, key, n_features: int, n_hidden: int = 2) -> jax.Array:
    """``W [n_hidden, n_features]`` drawn from the named init (see ``INITS``); ``xavier`` is
    ``relu_output.init``'s ``W`` for the same key."""
    if name == "xavier":
        return relu_output.init(key, n_features, n_hidden)["W"]
    bound = init_moments(name, n_features, n_hidden)["bound"]
    shape = (int(n_hidden), int(n_features))
    if name == "torch_linear":
        return jax.random.uniform(key, shape, minval=-bound, maxval=bound)
    return jax.random.normal(key, shape)


@dataclasses.dataclass(frozen=True)
class OptFailureConfig:
    """Static settings (docs/sources.md §4). From the post (seed 004): m = 2, data ``I_n``,
    MSE loss, AdamW, 25,000 steps ("trained for 25,000 epochs using AdamW", full batch),
    n = 7 among ``ns``, and plain Adam beside AdamW ("trained the autoencoder using Adam
    without any regularization"). Ours, where the post is silent: ``ns`` beyond 7, the
    inits, ``lrs``, the constant schedule (no warm-up, no decay: the post gives no
    schedule), AdamW's decay 1e-2 (PyTorch's default; optax's decoupled ``lr * wd * w``,
    as PyTorch's AdamW), plain Adam as the same optimiser with decay 0 (everything else
    equal), ``seeds`` and every ``escape_*`` / ``sym_*`` setting. Optimisers are (name,
    weight decay). Every (optimiser, init, lr) trains the same ``seeds`` keys (the inits
    of one seed share its key, and every optimiser starts from the same params). The
    no-bias and escape runs use the first optimiser and lr, Xavier init.

    ``sym_*`` set ``symmetric_state_test`` at n = ``escape_n`` in float64: random
    perturbations of every parameter, ``sym_perturbations`` at each radius in
    ``sym_radii``, each followed by plain gradient descent (lr ``sym_gd_lr``, at most
    ``sym_gd_steps``); ``sym_directions`` starts of the search for the steepest one-sided
    curvature; ``sym_adam_steps`` steps of the first optimiser from the point in float32
    and float64.
    """

    ns: tuple[int, ...] = tuple(range(4, 13))
    seeds: int = 32
    steps: int = 25_000
    lrs: tuple[float, ...] = (1e-3, 1e-2)
    optimizers: tuple[tuple[str, float], ...] = (("adamw", 1e-2), ("adam", 0.0))
    inits: tuple[str, ...] = INITS
    no_bias_seeds: int = 32
    escape_n: int = 7
    escape_steps: int = 5_000
    escape_bias: tuple[float, ...] = tuple(np.round(np.linspace(-0.4, 0.2, 13), 3))
    escape_weight: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0)
    sym_radii: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    sym_perturbations: int = 200
    sym_gd_lr: float = 0.4
    sym_gd_steps: int = 60_000
    sym_directions: int = 256
    sym_adam_steps: int = 10_000
    seed: int = 0

    def __post_init__(self):
        if not self.inits:
            raise ValueError(f"inits must be a non-empty subset of {INITS}, got {self.inits!r}")
        for name in self.inits:
            one_of("inits", name, INITS)
        if not self.ns or any(positive_int("ns", n) < 3 for n in self.ns):
            raise ValueError(f"ns must be a non-empty list of integers >= 3 (the circle's n), got {self.ns!r}")
        for name in ("lrs", "sym_radii"):
            if any(not v > 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
            finite_values(name, getattr(self, name))
        if positive_int("escape_n", self.escape_n) < 6:
            raise ValueError(f"escape_n must be an integer >= 6 (a circle of n - 1 >= 5 live columns, whose "
                             f"biases are < 0), got {self.escape_n!r}")
        for name in ("seeds", "steps", "no_bias_seeds", "escape_steps", "sym_perturbations", "sym_gd_steps",
                     "sym_directions", "sym_adam_steps"):
            positive_int(name, getattr(self, name))


#: ``quick`` (ours) fits 5 minutes on a quiet 2-core CPU (an estimate from 392 CPU-seconds
#: under load; docs/opt-failure.md): AdamW and plain Adam side by side, 24 seeds, 16 no-bias seeds, 50 perturbations per radius; ``paper`` (the post's
#: n = 7 and 25,000 steps inside a sweep of ours): 256 seeds and 200 perturbations per
#: radius (1,000).
PRESETS = {"quick": OptFailureConfig(seeds=24, no_bias_seeds=16, sym_perturbations=50),
           "paper": OptFailureConfig(seeds=256, no_bias_seeds=100, sym_perturbations=200, sym_gd_steps=200_000)}
SEEDS = "seeds"


#: Where each setting comes from (docs/sources.md §4): "seed 004" with the post's words, or
#: "ours" where the post is silent. Saved in ``summary.json`` (``config.setting_sources``).
SETTING_SOURCES = {
    "model": 'seed 004: "x\' = ReLU(W^T W x + b)"; m = 2',
    "data": "seed 004: the identity, X = I (Henighan's notebook as quoted in the post)",
    "loss": 'seed 004: "Mean Squared Error (MSE) loss"',
    "n = 7": 'seed 004: "n = 7, m = 2, trained for 25,000 epochs using AdamW" (one example); the other ns: ours',
    "steps": 'seed 004: "25,000 epochs" (full batch on I_n: one step per epoch)',
    "optimizers": 'seed 004: AdamW; plain Adam: "I then trained the autoencoder using Adam without any '
                  'regularization, but the same optimization failure occurred"',
    "weight_decay": "ours: 1e-2 for AdamW (PyTorch's default; the post gives none), 0 for Adam",
    "lrs": "ours: the post gives no learning rate",
    "schedule": "ours: constant (no warm-up, no decay); the post gives no schedule",
    "inits": "ours: the post gives no init",
    "seeds": "ours: the post shows one run and gives no seed count or failure rate",
    "classes and thresholds": "ours (analysis.py); 'symmetric failure' as the post describes it (seed 004)",
}


def record(cfg: OptFailureConfig) -> dict:
    """The config's fields, the constants the classes and inits depend on, and where each
    setting comes from (``SETTING_SOURCES``)."""
    return {**dataclasses.asdict(cfg), "n_hidden": 2, "recon_tol": identity.RECON_TOL,
            "dead_fraction": identity.DEAD_FRACTION, "bias_rel_tol": identity.BIAS_REL_TOL, "schedule": "constant",
            "classes": list(identity.CLASSES),
            "init_moments": {i: {n: init_moments(i, n) for n in cfg.ns} for i in cfg.inits},
            "setting_sources": dict(SETTING_SOURCES)}


def train_config(cfg: OptFailureConfig, n: int, steps: int | None = None, use_bias: bool = True):
    return train.TrainConfig(n_features=n, n_hidden=2, steps=steps or cfg.steps, warmup_frac=0.0,
                             schedule="constant", use_bias=use_bias, n_history=100)


def grid_axes(cfg: OptFailureConfig) -> dict:
    """``(optimizer, init, lr, seed)`` with their values: how ``train_grid``'s arrays are laid out."""
    return {"optimizer": [name for name, _ in cfg.optimizers], "init": list(cfg.inits), "lr": list(cfg.lrs),
            "seed": range(cfg.seeds)}


def grid_shape(cfg: OptFailureConfig) -> tuple[int, int, int, int]:
    return tuple(len(v) for v in grid_axes(cfg).values())


def initial_W(cfg: OptFailureConfig, n: int) -> jax.Array:
    """``W [init, seed, 2, n]``: seed ``s`` draws each init from the same key."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.fold_in(jax.random.key(cfg.seed), n),
                                                           jnp.arange(cfg.seeds))
    return jnp.stack([jax.vmap(lambda k: init_W(name, k, n))(keys) for name in cfg.inits])


def train_grid(cfg: OptFailureConfig, n: int, progress=None, checkpoint_dir=None) -> train.GridResult:
    """Every (optimiser, init, lr, seed) at one n, as one ``run_grid`` program, arrays
    shaped ``[optimizer, init, lr, seed, ...]``; ``params_at`` holds the params at step 0
    (what each run started from). Seed ``s`` draws each init from the key
    ``fold_in(fold_in(key(cfg.seed), n), s)`` (``initial_W``), through the traced axis
    ``run``: ``run_grid``'s own ``seed`` axis would draw other keys, and other numbers."""
    tc, x = train_config(cfg, n), data.identity(n)
    base = jax.random.fold_in(jax.random.key(cfg.seed), n)

    def init(key, hp):  # the init named by hp["init"], from the key of seed hp["run"]
        k = jax.random.fold_in(base, hp["run"].astype(jnp.int32))
        W = jax.lax.switch(hp["init"].astype(jnp.int32), [lambda k, name=name: init_W(name, k, n) for name in cfg.inits], k)
        return {"W": W, "b": jnp.zeros(n, jnp.float32)}

    grid = {"weight_decay": [w for _, w in cfg.optimizers], "init": range(len(cfg.inits)), "lr": cfg.lrs,
            "run": range(cfg.seeds)}
    return train.run_grid(init, train.relu.example_loss_fn(tc), x, grid, tc.steps, schedule="constant",
                          warmup_frac=0.0, b1=tc.b1, b2=tc.b2, eps=tc.eps, n_history=tc.n_history,
                          runs_batch=int(np.prod(grid_shape(cfg))), progress=progress,
                          checkpoint_dir=checkpoint_dir, keep_params_at=(0,))


# --- the symmetric failure: local minimum or saddle? (float64) -------------------------
# Params are flat, ``v = (W.ravel(), b)`` with ``W [2, n]``; the dead column is the last.


def _unflatten(v, n: int) -> dict:
    return {"W": v[: 2 * n].reshape(2, n), "b": v[2 * n:]}


def flat_loss(n: int, skip=None):
    """The training loss (``relu_output.loss`` on ``I_n``) of flat params; with ``skip``
    (``[n, n]`` bool over ``Z = W^T W + b``, entry ``[i, j]`` = output i for input e_j) those
    entries are left out, which is ``L_smooth`` of ``symmetric_state_test``."""
    def loss(v):
        if skip is None:
            return relu_output.loss(_unflatten(v, n), jnp.eye(n, dtype=v.dtype))
        p = _unflatten(v, n)
        z = p["W"].T @ p["W"] + p["b"][:, None]
        return jnp.sum(jnp.where(skip, 0.0, (jax.nn.relu(z) - jnp.eye(n, dtype=v.dtype)) ** 2)) / n
    return loss


def preactivations(v, n: int):
    """``Z [n, n] = W^T W + b``: ``Z[i, j]`` is output i's pre-activation for input e_j."""
    p = _unflatten(v, n)
    return p["W"].T @ p["W"] + p["b"][:, None]


def dead_index(n: int) -> np.ndarray:
    """Flat indices of ``W_dead`` (the last column of ``W``)."""
    return np.array([n - 1, 2 * n - 1])


@functools.partial(jax.jit, static_argnums=0)
def constrained_descent(n: int, v, lr: float, max_steps: int, tol: float = 1e-10):
    """Gradient descent with ``W_dead`` held at its value (0), everything else free, until
    the gradient norm is below ``tol`` (or ``max_steps``): ``(v, steps, gradient norm)``."""
    mask = jnp.ones_like(v).at[dead_index(n)].set(0.0)
    grad = lambda v: mask * jax.grad(flat_loss(n))(v)

    def cond(c):
        return (c[1] < max_steps) & (jnp.linalg.norm(grad(c[0])) >= tol)

    v, steps = jax.lax.while_loop(cond, lambda c: (c[0] - lr * grad(c[0]), c[1] + 1), (v, 0))
    return v, steps, jnp.linalg.norm(grad(v))


def one_sided_curvature(H_s, J, n: int, d):
    """``q(d) = d^T H_s d + (2/n) sum_k max(J_k d, 0)^2``: the second derivative of
    ``t -> L(P + t d)`` at ``t = 0+`` at a critical point ``P`` whose kinked entries
    (pre-activation 0, target 0, gradients ``J [k, dim]``) are left out of ``H_s``."""
    return d @ H_s @ d + (2.0 / n) * jnp.sum(jax.nn.relu(J @ d) ** 2)


def steepest_one_sided(H_s, J, n: int, starts, steps: int = 2000, lr: float = 0.05):
    """Minimise ``q(d)`` on the unit sphere by projected gradient descent from each of
    ``starts [k, dim]`` (a ``lax.scan``); returns the directions and their ``q``."""
    q = lambda d: one_sided_curvature(H_s, J, n, d)

    def step(d, _):
        g = jax.grad(q)(d)
        d = d - lr * (g - (g @ d) * d)
        return d / jnp.linalg.norm(d), None

    def one(d):
        d, _ = jax.lax.scan(step, d / jnp.linalg.norm(d), None, length=steps)
        return d, q(d)

    return jax.vmap(one)(starts)


def one_sided_fit(loss, v0, d, h: float = 1e-5):
    """``L(v0 + t d) - L(v0) = a t + c t^2 + O(t^3)`` for ``t -> 0+``: ``(a, c)`` from
    ``t = h, 2h`` (for ``t -> 0-`` pass ``-d``)."""
    l0 = loss(v0)
    d1, d2 = loss(v0 + h * d) - l0, loss(v0 + 2 * h * d) - l0
    return (4 * d1 - d2) / (2 * h), (d2 - 2 * d1) / (2 * h * h)


def symmetric_point(n: int):
    """The symmetric failure as flat float64 params (numpy), with its constants: the live
    circle's squared radius ``r2``, chord between neighbours, and ``A = r2 / 2 - 2 / n``
    (a pure tilt ``W_dead = t u`` raises the loss by ``(n - 1) A / n |u|^2 t^2``)."""
    p = construct.symmetric_failure(n, dtype=np.float64)
    W = p["W"][:, :-1]
    r2 = float(np.sum(W[:, 0] ** 2))
    return (np.concatenate([p["W"].ravel(), p["b"]]),
            {"r2": r2, "chord": float(np.linalg.norm(W[:, 1] - W[:, 0])), "A": r2 / 2 - 2 / n})


def descent_ray(n: int, theta: float = 0.3):
    """A direction ``d`` along which the loss falls at second order from the symmetric
    failure: shift the live circle by ``s = (cos theta, sin theta)``, widen it (``W_live``
    grows by ``C W_live`` with ``C`` = the chord, so no neighbour output crosses its ReLU
    kink), set each live bias to keep ``|W_j|^2 + b_j = 1`` to first order, and grow
    ``W_dead = -a s`` against the shift. With ``A = r2 / 2 - 2 / n`` and ``a = 1 / (n A)``,
    ``L(P + t d) - L(P) = -(n - 1) / (n^3 A) t^2 + O(t^3)`` (the row of the dead output
    gives ``(1/n)[n db^2 + (n - 1) A |w|^2 + 2 (n - 1) / n w.s] t^2``; the live block stays
    exact). Needs n >= 6 (live biases < 0, A > 0). Returns ``(d, predicted t^2 coefficient)``."""
    if n < 6:
        raise ValueError(f"descent_ray needs n >= 6 (live biases < 0), got {n!r}")
    v0, k = symmetric_point(n)
    s = np.array([np.cos(theta), np.sin(theta)])
    W = v0[: 2 * n].reshape(2, n)[:, :-1]
    C, a = k["chord"], 1.0 / (n * k["A"])
    dW, db = np.zeros((2, n)), np.zeros(n)
    dW[:, :-1] = C * W + s[:, None]
    dW[:, -1] = -a * s
    db[:-1] = -2.0 * (C * k["r2"] + s @ W)
    return np.concatenate([dW.ravel(), db]), -(n - 1) / (n**3 * k["A"])


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _descend_until_decided(n: int, v0, v, lr, n_blocks: int, block: int, escape_tol, stop_grad):
    """``perturbation_test``'s loop: gradient descent on every row of ``v``, each row frozen
    once it has escaped or come to rest (checked every ``block`` steps)."""
    loss = flat_loss(n)
    grad, losses = jax.vmap(jax.grad(loss)), jax.vmap(loss)
    l0 = loss(v0)

    def cond(c):
        return (c[5] < n_blocks) & jnp.any((c[1] < 0) & (c[2] < 0))

    def body(c):
        v, esc, rest, last, rise, k = c
        live = (esc < 0) & (rest < 0)
        v = jax.lax.fori_loop(0, block, lambda _, v: jnp.where(live[:, None], v - lr * grad(v), v), v)
        now = losses(v)
        rise = jnp.maximum(rise, jnp.where(live, now - last, -jnp.inf))
        step = (k + 1) * block
        esc = jnp.where(live & (now < l0 - escape_tol), step, esc)
        rest = jnp.where(live & (esc < 0) & (jnp.linalg.norm(grad(v), axis=1) < stop_grad), step, rest)
        return v, esc, rest, now, rise, k + 1

    minus = jnp.full(v.shape[0], -1)
    v, esc, rest, last, rise, _ = jax.lax.while_loop(
        cond, body, (v, minus, minus, losses(v), jnp.full(v.shape[0], -jnp.inf, v.dtype), 0))
    return v, esc, rest, last - l0, rise


def perturbation_test(n: int, v0, radii, per_radius: int, lr: float, max_steps: int, seed: int = 0,
                      block: int = 500, escape_tol: float = 1e-6, stop_grad: float = 1e-13) -> dict:
    """``per_radius`` random perturbations of every parameter at each radius (uniform
    direction), each followed by full-batch gradient descent at ``lr`` for at most
    ``max_steps``. A run stops when it has escaped (loss ``escape_tol`` below ``L(v0)``)
    or come to rest (gradient norm below ``stop_grad``, i.e. at a critical point to float64
    precision), checked every ``block`` steps. Per run: ``escape_step`` / ``rest_step``
    (-1: not), final ``loss - L(v0)``, final ``|W_dead|`` and ``max_rise``, the largest loss
    increase between checks (> 0 would mean ``lr`` is too large for monotone descent)."""
    v0 = np.asarray(v0, np.float64)
    radius = np.repeat(np.asarray(radii, np.float64), per_radius)
    d = np.random.default_rng(seed).standard_normal((radius.size, v0.size))
    v = v0[None] + radius[:, None] * d / np.linalg.norm(d, axis=1, keepdims=True)
    out = _descend_until_decided(n, v0, v, lr, -(-max_steps // block), block, escape_tol, stop_grad)
    v, esc, rest, excess, rise = (np.asarray(a) for a in jax.device_get(out))
    return {"radius": radius, "escape_step": esc, "rest_step": rest, "final_excess": excess, "max_rise": rise,
            "final_dead_norm": np.linalg.norm(v[:, dead_index(n)], axis=1)}


def adam_optimizers(cfg: OptFailureConfig) -> tuple[tuple[str, float], ...]:
    """The optimisers ``adam_at_point`` trains: the config's, and plain Adam if missing."""
    return cfg.optimizers + ((("adam", 0.0),) if ("adam", 0.0) not in cfg.optimizers else ())


def adam_at_point(cfg: OptFailureConfig, n: int, dtype) -> dict:
    """Each of ``adam_optimizers`` at the first lr, started at the symmetric failure in
    ``dtype`` (call float64 inside ``jax.enable_x64``): the gradient on ``W_dead`` at the
    point, the first optimiser's first move of ``W_dead``, and ``sym_adam_steps`` steps
    (a ``vmap`` of ``train.fit``: part of the float64 analysis of one point, whose
    numbers ``run_grid`` would move in the last digits)."""
    p = {k: np.asarray(v, dtype) for k, v in construct.symmetric_failure(n, dtype=np.float64).items()}
    x = np.eye(n, dtype=dtype)
    tc = train_config(cfg, n, steps=cfg.sym_adam_steps)
    opt = train.optimizer(tc, train.Hyper(cfg.lrs[0], cfg.optimizers[0][1], 1.0))

    @jax.jit
    def first_move(p):  # the first nonzero update (under a warm-up the lr is 0 at step 0)
        l0, g = jax.value_and_grad(train.loss_fn(tc))(p, x, jnp.ones(n, x.dtype))
        state = opt.init(p)
        zero, state = opt.update(g, state, p)
        one, _ = opt.update(g, state, p)
        return l0, g, jax.tree.map(lambda a, b: jnp.where(jnp.abs(a).max() > 0, a, b), zero, one)

    l0, g, updates = jax.device_get(first_move(p))
    wd = np.asarray([w for _, w in adam_optimizers(cfg)], dtype)
    hyper = train.Hyper(np.full(wd.shape, cfg.lrs[0], dtype), wd, np.ones(wd.shape, dtype))
    out = jax.device_get(jax.jit(jax.vmap(lambda h: train.fit(tc, h, p, x)))(hyper))
    hist = np.asarray(out.history, np.float64) - float(l0)
    runs = []
    for i, (name, w) in enumerate(adam_optimizers(cfg)):
        below = np.flatnonzero(hist[i] < -1e-4)
        runs.append({"optimizer": name, "weight_decay": w, "final_loss": float(out.train_loss[i]),
                     "final_dead_norm": float(np.linalg.norm(out.params["W"][i, :, -1])),
                     "final_dead_bias": float(out.params["b"][i, -1]),
                     "first_step_1e-4_below": int((below[0] + 1) * tc.log_every) if below.size else None})
    return {"dtype": jnp.dtype(dtype).name, "loss": float(l0), "grad_dead_norm": float(np.linalg.norm(g["W"][:, -1])),
            "grad_max": float(max(np.abs(g["W"]).max(), np.abs(g["b"]).max())),
            "first_update_dead_norm": float(np.linalg.norm(updates["W"][:, -1])),
            "first_update_dead_over_lr": float(np.abs(updates["W"][:, -1]).max() / cfg.lrs[0]),
            "runs": runs, "history": hist}


#: the post's tilts profiled from the symmetric failure: (angle of ``W_dead``, change of
#: ``b_dead``) per unit of t, and their labels
TILT_LINES = {"W_dead = t (1, 0)": (0.0, 0.0), "W_dead = t (cos pi/7, sin pi/7)": (np.pi / 7, 0.0),
              "W_dead = t (1, 0), b_dead - t": (0.0, -1.0), "W_dead = t (1, 0), b_dead + t": (0.0, 1.0)}


def symmetric_state_test(cfg: OptFailureConfig) -> Part:
    """Is the symmetric failure at n = ``escape_n`` (circle of n - 1, ``W_dead = 0``,
    ``b_dead = 1/n``) a local minimum or a saddle? Decided in float64 (inside
    ``jax.enable_x64``; the rest of the package stays float32). Returns the part
    ``symmetric``: the profiles, perturbation runs and Adam histories as arrays, the
    numbers in ``info``.

    (a) constrained optimum: gradient descent with ``W_dead = 0`` held, to gradient norm
    < 1e-10, from the point and from perturbed starts; (b) ``perturbation_test``; (c)
    one-sided derivatives: the point sits on ReLU kinks (neighbouring live outputs are
    exactly 0), so ``L = L_smooth + (1/n) sum_kinks ReLU(Z_k)^2`` and the second derivative
    along ``d`` from the point is ``one_sided_curvature``, not ``d^T H d``; profiles along
    the post's tilts (``W_dead`` in the latent plane, with and without ``b_dead``), along
    ``descent_ray`` and along the steepest one-sided direction found; (d)
    ``adam_at_point`` in float32 and float64. ``answer`` is "saddle" when the point is
    critical (gradient < 1e-10) and the loss falls at second order along ``descent_ray``.
    """
    n = cfg.escape_n
    with jax.enable_x64(True):
        v0, k = symmetric_point(n)
        dim, dead, b_dead = v0.size, dead_index(n), 3 * n - 1
        loss, grad = jax.jit(flat_loss(n)), jax.jit(jax.grad(flat_loss(n)))
        l0, closed_l0 = float(loss(v0)), (n - 1) / n**2
        grad_norm = float(np.linalg.norm(grad(v0)))
        rng = np.random.default_rng(cfg.seed + 7)

        # (a) the constrained optimum, from the point and from perturbed starts
        sym_start = v0.copy()
        sym_start[2 * n:] += 0.05  # every bias + 0.05 and b_dead = 0.5: keeps the (n - 1)-fold symmetry
        sym_start[b_dead] = 0.5
        rnd_start = v0 + 1e-3 * rng.standard_normal(dim)
        rnd_start[dead] = 0.0
        constrained = {}
        for name, start in (("from_point", v0), ("from_symmetric_start", sym_start), ("from_random_start", rnd_start)):
            v, steps, cg = jax.device_get(constrained_descent(n, start, cfg.sym_gd_lr, 200_000))
            live_sum = np.linalg.norm(v[: 2 * n].reshape(2, n)[:, :-1].sum(1))
            constrained[name] = {"steps": int(steps), "constrained_grad_norm": float(cg),
                                 "full_grad_norm": float(np.linalg.norm(grad(v))),
                                 "dead_grad_norm": float(np.linalg.norm(np.asarray(grad(v))[dead])),
                                 "dead_grad_closed_form": float(2 / n**2 * live_sum),
                                 "loss_minus_closed_form": float(loss(v)) - closed_l0,
                                 "dead_bias_minus_1_over_n": float(v[b_dead]) - 1 / n,
                                 "live_sum_norm": float(live_sum)}

        # (c) kinks, the smooth part's Hessian, one-sided curvature
        Z = np.asarray(preactivations(v0, n))
        kinks = (np.abs(Z) < 1e-12) & ~np.eye(n, dtype=bool)
        ki, kj = np.nonzero(kinks)
        J = np.asarray(jax.jit(jax.jacobian(lambda v: preactivations(v, n)[ki, kj]))(v0))
        H_s = np.asarray(jax.jit(jax.hessian(flat_loss(n, skip=jnp.asarray(kinks))))(v0))
        eig, vec = np.linalg.eigh(H_s)
        lam_max = float(np.linalg.eigvalsh(H_s + (2.0 / n) * J.T @ J).max())
        if not cfg.sym_gd_lr < 2.0 / lam_max:
            raise ValueError(f"sym_gd_lr must be below 2 / lambda_max = {2 / lam_max:.4g} for monotone "
                             f"descent near the point, got {cfg.sym_gd_lr!r}")
        q = lambda d: float(d @ H_s @ d + (2.0 / n) * np.sum(np.maximum(J @ d, 0.0) ** 2))  # one_sided_curvature
        ray, ray_pred = descent_ray(n)
        negative = vec[:, eig < -1e-12].T
        starts = np.concatenate([rng.standard_normal((cfg.sym_directions, dim)), negative, -negative,
                                 (ray / np.linalg.norm(ray))[None]])
        dirs, qs = (np.asarray(a) for a in jax.jit(lambda s: steepest_one_sided(H_s, J, n, s))(starts))
        best = dirs[int(np.argmin(qs))]
        fit = lambda d: tuple(float(c) for c in one_sided_fit(loss, v0, d))

        def unit_tilt(theta, db):
            d = np.zeros(dim)
            d[dead] = np.cos(theta), np.sin(theta)
            d[b_dead] = db
            return d

        tilts = []
        for theta in np.linspace(0, 2 * np.pi, 24, endpoint=False):
            for db in (0.0, -1.0, 1.0):
                d = unit_tilt(theta, db)
                (ap, cp), (am, cm) = fit(d), fit(-d)
                tilts.append({"angle_deg": float(np.degrees(theta)), "d_bias": db, "a_plus": ap, "c_plus": cp,
                              "a_minus": am, "c_minus": cm, "c_closed_form": (n - 1) * k["A"] / n + db**2})
        bias_only = np.zeros(dim)
        bias_only[b_dead] = 1.0
        emin = vec[:, 0]
        (ray_a, ray_c), (best_a, best_c) = fit(ray), fit(best)
        ray_norm = float(np.linalg.norm(ray))
        curvature = {
            "kinked_outputs": int(kinks.sum()), "kinks_are_live_neighbours": bool(
                all(abs(i - j) % (n - 1) in (1, n - 2) and max(i, j) < n - 1 for i, j in zip(ki, kj))),
            "H_smooth_eigenvalues": eig.tolist(), "lambda_max_one_sided": lam_max,
            "H_min_eigvec_c_plus": fit(emin)[1], "H_min_eigvec_c_minus": fit(-emin)[1],
            "H_min_eigvec_c_predicted_by_H": float(eig[0] / 2), "H_min_eigvec_q_over_2": q(emin) / 2,
            "tilts": tilts, "tilt_c_min": min(min(t["c_plus"], t["c_minus"]) for t in tilts),
            "tilt_a_max_abs": max(max(abs(t["a_plus"]), abs(t["a_minus"])) for t in tilts),
            "tilt_c_closed_form_no_bias": (n - 1) * k["A"] / n, "bias_only_c": fit(bias_only)[1],
            "ray": {"a": ray_a, "c": ray_c, "c_closed_form": ray_pred, "norm": ray_norm,
                    "c_per_unit_norm": ray_c / ray_norm**2},
            "steepest": {"q_over_2": float(qs.min()) / 2, "a": best_a, "c": best_c, "starts": int(starts.shape[0]),
                         "starts_with_q_negative": int((qs < -1e-9).sum()),
                         "dead_share": float(np.sum(best[dead] ** 2)), "dead_bias_share": float(best[b_dead] ** 2)},
        }
        ts = np.linspace(-0.3, 0.3, 121)
        t_small = np.linspace(-0.05, 0.05, 121)  # as many points as ts: one compiled profile
        line = jax.jit(jax.vmap(lambda d, t: loss(v0 + t * d) - l0, in_axes=(None, 0)))
        profile = {"tilt": np.stack([np.asarray(line(unit_tilt(th, db), ts)) for th, db in TILT_LINES.values()]),
                   "bias_only": np.asarray(line(bias_only, ts)), "ray": np.asarray(line(ray / ray_norm, t_small)),
                   "steepest": np.asarray(line(best, t_small)), "H_min": np.asarray(line(emin, t_small))}

        # (b) random perturbations + plain gradient descent: [radius, draw]
        pert = perturbation_test(n, v0, cfg.sym_radii, cfg.sym_perturbations, cfg.sym_gd_lr, cfg.sym_gd_steps,
                                 cfg.seed + 8)
        pert = {k2: v.reshape(len(cfg.sym_radii), cfg.sym_perturbations) for k2, v in pert.items() if k2 != "radius"}
        adam64 = adam_at_point(cfg, n, jnp.float64)
    adam32 = adam_at_point(cfg, n, jnp.float32)
    adam_every = train_config(cfg, n, steps=cfg.sym_adam_steps).log_every
    history = np.stack([adam32.pop("history"), adam64.pop("history")])

    saddle = curvature["ray"]["c"] < 0 and grad_norm < 1e-10
    info = {
        "n": n, "loss": l0, "loss_closed_form": closed_l0, "grad_norm": grad_norm, **k,
        "answer": "saddle" if saddle else "no descent direction found",
        "constrained_optimum": constrained, "one_sided": curvature,
        "perturbation": {"gd_lr": cfg.sym_gd_lr, "max_steps": cfg.sym_gd_steps, "escape_tol": 1e-6,
                         "stop_grad": 1e-13},
        "adam": {"lr": cfg.lrs[0], "first_update_optimizer": cfg.optimizers[0][0], "eps": train_config(cfg, n).eps,
                 "steps": cfg.sym_adam_steps, "float32": adam32, "float64": adam64},
    }
    dims = {"profile/tilt": ("tilt", "t"), "profile/bias_only": ("t",),
            **{f"profile/{k2}": ("t_small",) for k2 in ("ray", "steepest", "H_min")},
            **{f"perturbation/{k2}": ("radius", "draw") for k2 in pert},
            "adam/history": ("dtype", "adam_optimizer", "adam_step")}
    coords = {"t": ts, "t_small": t_small, "tilt": list(TILT_LINES), "radius": cfg.sym_radii,
              "draw": range(cfg.sym_perturbations), "dtype": ["float32", "float64"],
              "adam_optimizer": [name for name, _ in adam_optimizers(cfg)],
              "adam_step": adam_every * (1 + np.arange(history.shape[-1]))}
    return Part({"profile": profile, "perturbation": pert, "adam": {"history": history}}, dims, coords, info)


def perturbation_summary(part: Part, cfg: OptFailureConfig) -> dict:
    """The perturbation runs of ``symmetric_state_test``, in all and per radius."""
    pert = part["perturbation"]
    by_radius = []
    for i, r in enumerate(cfg.sym_radii):
        at, rest, ex = pert["escape_step"][i], pert["rest_step"][i], pert["final_excess"][i]
        esc, back = at >= 0, (rest >= 0) & (np.abs(ex) <= 1e-12)
        by_radius.append({"radius": r, "runs": int(at.size), "escaped": int(esc.sum()),
                          "returned": int(back.sum()), "undecided": int((~esc & ~back).sum()),
                          "escape_step_median": float(np.median(at[esc])) if esc.any() else None,
                          "escape_step_max": int(at[esc].max()) if esc.any() else None,
                          "returned_dead_norm_max": float(pert["final_dead_norm"][i][back].max())
                          if back.any() else None,
                          "not_escaped_excess_min": float(ex[~esc].min()) if (~esc).any() else None,
                          "not_escaped_excess_max": float(ex[~esc].max()) if (~esc).any() else None})
    return {**part.info["perturbation"], "runs": int(pert["escape_step"].size),
            "escaped": int(sum(r["escaped"] for r in by_radius)),
            "returned": int(sum(r["returned"] for r in by_radius)),
            "undecided": int(sum(r["undecided"] for r in by_radius)),
            "max_rise": float(pert["max_rise"].max()), "by_radius": by_radius}


def no_bias_counts(cfg: OptFailureConfig, n: int) -> np.ndarray:
    """One-hots reconstructed by ``ReLU(W^T W x)`` (no bias), per seed (first optimiser
    and lr, Xavier init). A ``vmap`` of ``train.train``, not ``run_grid``: the fused loss
    of the bias-free model fails inside ``run_grid``'s ``shard_map`` (its constant zero
    bias gets a per-run cotangent)."""
    tc, x = train_config(cfg, n, use_bias=False), data.identity(n)
    keys = jax.random.split(jax.random.fold_in(jax.random.key(cfg.seed + 1), n), cfg.no_bias_seeds)
    hyper = train.Hyper(cfg.lrs[0], cfg.optimizers[0][1], 1.0)
    out = jax.device_get(jax.jit(jax.vmap(lambda k: train.train(tc, hyper, k, x)))(keys))
    return identity.reconstructed(np.asarray(out.params["W"]), None).sum(-1)


def escape_grid(cfg: OptFailureConfig) -> Part:
    """Start at the symmetric failure (circle of n - 1, dead column, b_dead = 1/n), move
    ``b_dead`` by each ``escape_bias`` and set ``W_dead`` to ``escape_weight`` times a live
    column's length, pointing between two live columns; train (first optimiser and lr);
    which recover? A ``vmap`` of ``train.fit`` (a Python-float lr, as the numbers were
    made), not ``run_grid``, whose traced lr moves the final params by about 1e-6."""
    n = cfg.escape_n
    start = construct.symmetric_failure(n)
    live_norm = float(np.linalg.norm(start["W"][:, 0]))
    mid = np.pi / (n - 1)  # halfway between live columns 0 and 1
    db, eps = (a.ravel() for a in np.meshgrid(cfg.escape_bias, cfg.escape_weight, indexing="ij"))
    W = np.repeat(start["W"][None], db.size, axis=0)
    W[:, :, -1] = (eps * live_norm)[:, None] * np.array([np.cos(mid), np.sin(mid)])[None]
    b = np.repeat(start["b"][None], db.size, axis=0)
    b[:, -1] += db
    params = {"W": jnp.asarray(W, jnp.float32), "b": jnp.asarray(b, jnp.float32)}
    tc, x = train_config(cfg, n, steps=cfg.escape_steps), data.identity(n)
    hyper = train.Hyper(cfg.lrs[0], cfg.optimizers[0][1], 1.0)
    out = jax.device_get(jax.jit(jax.vmap(lambda p: train.fit(tc, hyper, p, x)))(params))
    Wf, bf = np.asarray(out.params["W"]), np.asarray(out.params["b"])
    grid = (len(cfg.escape_bias), len(cfg.escape_weight))
    arrays = {"recovered": identity.reconstructed(Wf, bf).all(-1).reshape(grid),
              "final_loss": np.asarray(out.train_loss).reshape(grid),
              "final_dead_bias": bf[:, -1].reshape(grid),
              "final_dead_norm": np.linalg.norm(Wf[:, :, -1], axis=-1).reshape(grid)}
    return on_grid(arrays, {"escape_bias": cfg.escape_bias, "escape_weight": cfg.escape_weight})


#: the dims after the grid's of each array of a part ``n{n}``
TRAILING = {"W": ("neuron", "feature"), "b": ("feature",), "W0": ("neuron", "feature"), "b0": ("feature",),
            "history": ("step",), "no_bias/reconstructed": ("!", "no_bias_seed")}


def n_part(cfg: OptFailureConfig, n: int, store) -> Part:
    """The part ``n{n}``: the grid at n (``train_grid``), its classes, the no-bias counts,
    and ``W0``, ``b0``: the params each run started from, as ``run_grid`` kept them."""
    res = train_grid(cfg, n, store.progress, store.checkpoints(f"n{n}"))
    W, b = res.params["W"], res.params["b"]
    W0, b0 = (np.asarray(res.params_at[k])[..., 0, :] if k == "b" else np.asarray(res.params_at[k])[..., 0, :, :]
              for k in ("W", "b"))
    arrays = {"W": W, "b": b, "W0": W0, "b0": b0, "train_loss": res.train_loss, "history": res.history,
              "diverged": res.diverged,
              **identity.classify(W, b), "no_bias": {"reconstructed": no_bias_counts(cfg, n)}}
    return on_grid(arrays, grid_axes(cfg), TRAILING, coords={"step": res.history_steps, "feature": range(n)},
                   n_runs=int(np.prod(grid_shape(cfg))), compile_seconds=res.compile_seconds)


def run(cfg: OptFailureConfig, store) -> None:
    """Parts ``n4``, ``n5``, ... (one per n), ``escape`` and ``symmetric``."""
    for n in cfg.ns:
        store.part(f"n{n}", lambda n=n: n_part(cfg, n, store))
    store.part("escape", lambda: escape_grid(cfg))
    store.part("symmetric", lambda: symmetric_state_test(cfg))


def failure_table(parts: dict, cfg: OptFailureConfig) -> list[dict]:
    """One row per (optimiser, init, lr): failures over ``ns`` with 95% Wilson intervals."""
    rows = []
    for io, (name, wd) in enumerate(cfg.optimizers):
        for ii, init in enumerate(cfg.inits):
            for il, lr in enumerate(cfg.lrs):
                cls = np.stack([parts[f"n{n}"]["cls"][io, ii, il] for n in cfg.ns])
                fails, trials = (cls != 0).sum(-1), np.full(len(cfg.ns), cls.shape[-1])
                lo, hi = identity.wilson_interval(fails, trials)
                rows.append({"optimizer": name, "weight_decay": wd, "init": init, "lr": lr, "ns": list(cfg.ns),
                             "seeds": int(cls.shape[-1]), "failures": fails.tolist(),
                             "failure_rate": (fails / trials).tolist(), "wilson_low": lo.tolist(),
                             "wilson_high": hi.tolist(), "symmetric_failures": (cls == 1).sum(-1).tolist()})
    return rows


#: the post's words on plain Adam (seed 004), which ``adam_vs_adamw`` measures against
ADAM_QUOTE = ("It's not AdamW's fault: At some point, I suspected that AdamW may have been the culprit, because "
              "AdamW has weight decay, which is a form of regularization. I then trained the autoencoder using "
              "Adam without any regularization, but the same optimization failure occurred.")


def adam_vs_adamw(parts: dict, cfg: OptFailureConfig) -> dict | None:
    """AdamW and plain Adam side by side: per (init, lr), failures of each over ``ns`` on the
    same seeds, and paired counts (a seed's runs under both optimisers start from the same
    params, so ``both`` / ``only_adamw`` / ``only_adam`` compare run by run). ``same_init``:
    whether the saved step-0 params (``W0``, ``b0``) are identical across the optimiser axis
    at every n. ``total.discordant_sign_test_p``: the two-sided exact sign test on the runs
    that fail under one optimiser only (pooled over cells; the cells share seeds' keys, so
    the pooled runs are not independent and the p-value is indicative). None unless the
    config has both "adamw" and "adam"."""
    names = [name for name, _ in cfg.optimizers]
    if "adamw" not in names or "adam" not in names:
        return None
    iw, ia = names.index("adamw"), names.index("adam")
    same = all(np.array_equal(parts[f"n{n}"][k][iw], parts[f"n{n}"][k][ia]) for n in cfg.ns for k in ("W0", "b0"))
    rows, totals = [], {"adamw": 0, "adam": 0, "both": 0, "only_adamw": 0, "only_adam": 0, "runs_each": 0}
    for ii, init in enumerate(cfg.inits):
        for il, lr in enumerate(cfg.lrs):
            fw = np.stack([parts[f"n{n}"]["cls"][iw, ii, il] != 0 for n in cfg.ns])  # [n, seed]
            fa = np.stack([parts[f"n{n}"]["cls"][ia, ii, il] != 0 for n in cfg.ns])
            sw = np.stack([parts[f"n{n}"]["cls"][iw, ii, il] == 1 for n in cfg.ns]).sum(-1)
            sa = np.stack([parts[f"n{n}"]["cls"][ia, ii, il] == 1 for n in cfg.ns]).sum(-1)
            trials = np.full(len(cfg.ns), fw.shape[-1])
            lw, hw = identity.wilson_interval(fw.sum(-1), trials)
            la, ha = identity.wilson_interval(fa.sum(-1), trials)
            row = {"init": init, "lr": lr, "ns": list(cfg.ns), "seeds": int(fw.shape[-1]),
                   "adamw_failures": fw.sum(-1).tolist(), "adam_failures": fa.sum(-1).tolist(),
                   "adamw_rate": fw.mean(-1).tolist(), "adam_rate": fa.mean(-1).tolist(),
                   "adamw_wilson": [lw.tolist(), hw.tolist()], "adam_wilson": [la.tolist(), ha.tolist()],
                   "adamw_symmetric": sw.tolist(), "adam_symmetric": sa.tolist(),
                   "both": (fw & fa).sum(-1).tolist(), "only_adamw": (fw & ~fa).sum(-1).tolist(),
                   "only_adam": (~fw & fa).sum(-1).tolist()}
            rows.append(row)
            totals["adamw"] += int(fw.sum())
            totals["adam"] += int(fa.sum())
            totals["both"] += int((fw & fa).sum())
            totals["only_adamw"] += int((fw & ~fa).sum())
            totals["only_adam"] += int((~fw & fa).sum())
            totals["runs_each"] += int(fw.size)
    k, m = totals["only_adam"], totals["only_adamw"] + totals["only_adam"]
    totals["discordant_sign_test_p"] = float(scipy.stats.binomtest(k, m).pvalue) if m else None
    return {"claim": {"source": "seed 004", "quote": ADAM_QUOTE,
                      "setting": "the post: n = 7, m = 2, 25,000 epochs, one run shown; no lr, init or rate given"},
            "held_fixed": "ours: same lr, init draw (step-0 params), seeds, steps, constant schedule, betas and eps; "
                          "only the weight decay differs (AdamW %g, decoupled: lr * wd * w per step; Adam 0)"
                          % cfg.optimizers[iw][1],
            "weight_decay": {"adamw": cfg.optimizers[iw][1], "adam": cfg.optimizers[ia][1]},
            "same_init": bool(same), "steps": cfg.steps, "seeds": cfg.seeds, "ns": list(cfg.ns),
            "total": totals, "rows": rows}


def by_n_rows(part: Part, cfg: OptFailureConfig, n: int) -> list[dict]:
    """One row per (optimiser, init, lr) at one n: rates of each class, dead biases."""
    rows = []
    for io, (name, wd) in enumerate(cfg.optimizers):
        for ii, init in enumerate(cfg.inits):
            for il, lr in enumerate(cfg.lrs):
                c, db = part["cls"][io, ii, il], part["dead_bias"][io, ii, il]
                lo, hi = identity.wilson_interval(np.sum(c != 0), c.size)
                rows.append({"n": n, "optimizer": name, "weight_decay": wd, "init": init, "lr": lr,
                             "n_seeds": int(c.size), "perfect_rate": float(np.mean(c == 0)),
                             "failure_rate": float(np.mean(c != 0)), "failure_wilson": [float(lo), float(hi)],
                             "symmetric_failure_rate": float(np.mean(c == 1)),
                             "dead_bias_mean": float(np.nanmean(db)) if np.isfinite(db).any() else None,
                             "n_learned_mean": float(part["n_learned"][io, ii, il].mean()),
                             "n_diverged": int(part["diverged"][io, ii, il].sum())})
    return rows


def compare_with_construction(part: Part, n: int) -> dict:
    """The exact circle's loss, and how the perfect trained runs at n differ from it."""
    exact = construct.circle(n, np.float64)
    recon = identity.reconstruction(exact["W"], exact["b"])
    perfect = part["cls"] == 0
    W = part["W"][perfect]
    gaps = np.array([identity.angle_gaps(w) for w in W]) if len(W) else np.zeros((0, n))
    return {"n": n, "construction_loss": float(np.sum((recon - np.eye(n)) ** 2) / n),
            "construction_column_norm": float(np.linalg.norm(exact["W"][:, 0])),
            "construction_bias": float(exact["b"][0]),
            "perfect_runs": int(perfect.sum()),
            "trained_column_norm_mean": float(np.linalg.norm(W, axis=-2).mean()) if len(W) else None,
            "trained_bias_mean": float(part["b"][perfect].mean()) if len(W) else None,
            "trained_gap_max_error_deg": float(np.abs(gaps - 360.0 / n).max()) if len(W) else None}


def summarize(parts: dict, cfg: OptFailureConfig) -> dict:
    by_n, no_bias, construction = [], [], []
    for n in cfg.ns:
        part = parts[f"n{n}"]
        by_n += by_n_rows(part, cfg, n)
        counts = part["no_bias"]["reconstructed"]
        no_bias.append({"n": n, "bound_2m": 4, "max_reconstructed": int(counts.max()),
                        "mean_reconstructed": float(counts.mean()),
                        "cross_construction_reconstructed": int(
                            identity.reconstructed(construct.cross(n)["W"], None).sum())})
        construction.append(compare_with_construction(part, n))
    symmetric = parts["symmetric"]
    escape = parts["escape"]
    zero = list(cfg.escape_bias).index(0.0) if 0.0 in cfg.escape_bias else None
    return {"failure_table": failure_table(parts, cfg), "adam_vs_adamw": adam_vs_adamw(parts, cfg),
            "by_n": by_n, "no_bias": no_bias,
            "construction": construction,
            "symmetric_state": {**symmetric.info, "perturbation": perturbation_summary(symmetric, cfg)},
            "escape": {"n": cfg.escape_n, "bias_offsets": list(cfg.escape_bias),
                       "weight_scales": list(cfg.escape_weight),
                       "recovered": escape["recovered"].tolist(),
                       "recovered_fraction": float(escape["recovered"].mean()),
                       "unperturbed_stays_failed": None if zero is None else bool(not escape["recovered"][zero, 0]),
                       "unperturbed_final_dead_bias": None if zero is None else float(
                           escape["final_dead_bias"][zero, 0])}}


def draw(parts: dict, summary: dict, cfg: OptFailureConfig, out) -> None:
    """Every figure of an ``opt-failure`` run."""
    figures.opt_failure(parts, cfg, summary["results"]["by_n"], Path(out), summary["results"].get("adam_vs_adamw"))

"""The training driver: one `lax.scan` over optimizer steps, for pretraining and fine-tuning.

`train_steps` is pure: it maps a `TrainState` to the state `num_steps` later and the
per-step losses, so it can be `jit`-ed, `vmap`-ed over seeds or nested in other JAX code.
`train` is the host-side driver around it. It runs the scan in segments so that progress
(step, loss, steps/s, ETA) reaches the log. It maps over a leading seed axis with `vmap`,
and it reports a NaN or inf loss with its step and seed.

The batch of step `t` is drawn with `jax.random.fold_in(key, t)`, so the results do not
depend on how the steps are split into segments.
"""

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import optax

from lafit import model as model_lib
from lafit import regimes

Array = jax.Array
Batch = Any
LossFn = Callable[[model_lib.Params, Batch, Array], Array]
BatchSampler = Callable[[Array, Array], Batch]


# XLA's CPU backend hands some fusions of tiny products and reductions to the YNNPACK
# library, which is slower for the training steps here. On a 2-core x86-64 CPU (jax 0.10.2)
# the joint fine-tuning step of 6 regimes took 3.1 ms with YNNPACK and 2.0 ms without it.
# The Gram pretraining step took 2.9 ms and 2.5 ms (benchmarks/run_benchmarks.py).
_CPU_TRAIN_OPTIONS = {'xla_cpu_experimental_ynn_fusion_type': ''}


# Without LLVM's optimizations, XLA's CPU backend compiled the programs of a run 1.3 to 1.8
# times faster and ran them slower, which pays off for a program that runs for less time
# than it takes to compile. On a 2-core x86-64 CPU (jax 0.10.2) the exact test-error
# curves compiled in 0.75 s instead of 1.29 s, and 5000 steps of population pretraining in
# 0.95 s instead of 1.43 s while running 0.08 s longer.
_CPU_FAST_COMPILE_OPTIONS = {'xla_backend_optimization_level': 0}


@functools.cache
def _cpu_options_supported(options: tuple[tuple[str, str | int], ...]) -> bool:
  try:
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(np.float32(0)).compile()
  except Exception:  # pylint: disable=broad-except
    return False  # This XLA version does not have the options.
  return True


def compiler_options(*, fast_compile: bool = False) -> dict[str, str | int] | None:
  """Returns the XLA options of lafit's compiled programs on the default backend.

  On CPU this turns off YNNPACK fusions (see `_CPU_TRAIN_OPTIONS`), and with
  `fast_compile` also LLVM's optimizations (see `_CPU_FAST_COMPILE_OPTIONS`), each where
  XLA has the option. Elsewhere it returns `None`, the defaults. Pass it to `jax.jit` as
  `compiler_options` when compiling `train_steps` outside `train`.
  """
  if jax.default_backend() != 'cpu':
    return None
  groups = [_CPU_TRAIN_OPTIONS]
  if fast_compile:
    groups.append(_CPU_FAST_COMPILE_OPTIONS)
  options = {}
  for group in groups:
    if _cpu_options_supported(tuple(group.items())):
      options.update(group)
  return options or None


class TrainState(NamedTuple):
  """Everything a training step reads and writes."""

  params: model_lib.Params
  opt_state: optax.OptState
  key: Array
  step: Array
  nonfinite_step: Array  # First step whose loss or gradient was NaN or inf; -1 if none.


def _update(loss_of_params, optimizer, mask, params, opt_state):
  """One optimizer update; returns the new parameters and state, the loss and finiteness."""
  loss, grads = jax.value_and_grad(loss_of_params)(params)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  new_params = regimes.apply_masked_updates(params, updates, mask)
  grads_finite = jnp.all(jnp.stack(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
  return new_params, opt_state, loss, jnp.isfinite(loss) & grads_finite


def _batch_of(sample_batch: BatchSampler, state: TrainState, step: Array) -> Batch:
  return sample_batch(jax.random.fold_in(state.key, step), step)


def _scan_steps(sample_batch: BatchSampler, apply_batch, state: TrainState, num_steps: int,
                reference=None):
  """Runs `num_steps` steps in one `lax.scan`, sampling each batch one iteration ahead.

  The iteration of step `t` draws the batch of step `t + 1` and carries it to the next
  iteration. The draw does not depend on step `t`'s update, so XLA can run the two side
  by side, and the batch is written once to the loop state instead of being recomputed
  inside each computation that reads it. Each batch is still drawn from the key of its
  own step, so the results equal those of `step` called `num_steps` times. One batch past
  the last step is drawn and discarded.

  With a `reference` (params), also returns the sum over steps of `params - reference`;
  otherwise that sum is `None`.
  """

  def body(carry, _):
    state, batch, total = carry
    next_batch = _batch_of(sample_batch, state, state.step + 1)
    state, loss = apply_batch(state, batch)
    if reference is not None:
      total = jax.tree_util.tree_map(lambda t, p, r: t + (p - r), total, state.params,
                                     reference)
    return (state, next_batch, total), loss

  total = None if reference is None else jax.tree_util.tree_map(jnp.zeros_like, reference)
  first_batch = _batch_of(sample_batch, state, state.step)
  (state, _, total), losses = jax.lax.scan(body, (state, first_batch, total), None,
                                           length=num_steps)
  return state, losses, total


def average_params(reference: model_lib.Params, deviation_sum: model_lib.Params,
                   num_steps: int) -> model_lib.Params:
  """Returns `reference + deviation_sum / num_steps`, the mean of the averaged iterates.

  An entry whose deviations sum to exactly 0, as a frozen parameter's do, is returned as
  `reference` itself, so frozen parameters stay bit-identical.
  """
  return jax.tree_util.tree_map(
      lambda r, t: jnp.where(t == 0, r, r + t / num_steps), reference, deviation_sum)


def _next_state(state: TrainState, params, opt_state, finite: Array) -> TrainState:
  nonfinite_step = jnp.where((state.nonfinite_step < 0) & ~finite, state.step,
                             state.nonfinite_step)
  return TrainState(params=params, opt_state=opt_state, key=state.key, step=state.step + 1,
                    nonfinite_step=nonfinite_step)


@dataclasses.dataclass(frozen=True)
class Trainer:
  """The static description of a training run.

  Attributes:
    loss_fn: `loss(params, batch, step) -> scalar`.
    sample_batch: `sample(key, step) -> batch`; it may ignore both (population training).
    optimizer: an optax transformation, usually from `regimes.make_optimizer`.
    mask: the trainable mask; frozen parameters are returned bit-identical.
  """

  loss_fn: LossFn
  sample_batch: BatchSampler
  optimizer: optax.GradientTransformation
  mask: regimes.Mask | None = None

  def init(self, params: model_lib.Params, key: Array) -> TrainState:
    """Starts a run from `params` with a fresh optimizer state."""
    return TrainState(params=params, opt_state=self.optimizer.init(params), key=key,
                      step=jnp.zeros((), jnp.int32), nonfinite_step=-jnp.ones((), jnp.int32))

  def apply_batch(self, state: TrainState, batch: Batch) -> tuple[TrainState, Array]:
    """Takes one optimizer step on `batch`; returns the new state and the loss before it."""
    params, opt_state, loss, finite = _update(
        lambda params: self.loss_fn(params, batch, state.step), self.optimizer, self.mask,
        state.params, state.opt_state)
    return _next_state(state, params, opt_state, finite), loss

  def step(self, state: TrainState) -> tuple[TrainState, Array]:
    """Takes one optimizer step on the batch of `state.step`; returns the state and loss."""
    return self.apply_batch(state, _batch_of(self.sample_batch, state, state.step))

  def train_steps(self, state: TrainState, num_steps: int) -> tuple[TrainState, Array]:
    """Runs `num_steps` steps in one `lax.scan`; returns the state and the losses."""
    state, losses, _ = _scan_steps(self.sample_batch, self.apply_batch, state, num_steps)
    return state, losses

  def train_steps_averaging(self, state: TrainState, num_steps: int, reference
                            ) -> tuple[TrainState, Array, model_lib.Params]:
    """Like `train_steps`, and also sums `params - reference` after each step."""
    return _scan_steps(self.sample_batch, self.apply_batch, state, num_steps, reference)


JointLossFn = Callable[[model_lib.Params, Batch, Array, Any], Array]


@dataclasses.dataclass(frozen=True)
class JointTrainer:
  """Several regimes trained side by side, each step on one shared batch.

  A regime here is data, not code: its trainable mask and its loss arguments are arrays
  with a leading regime axis `R`, and one compiled step `vmap`s the update over them. So
  the batch of each step is sampled once for all regimes (common random numbers), and a
  run compiles one step instead of one per regime.

  The state has a leading axis `R` on `params`, `opt_state` and `nonfinite_step`; `key`
  and `step` are shared. `train_steps` returns losses of shape `(R, num_steps)`, and
  `train` accepts a `JointTrainer` wherever it accepts a `Trainer`.

  Attributes:
    loss_fn: `loss(params, batch, step, args) -> scalar`, where `args` is one regime's
      slice of `loss_args`. It may also be a tuple of such functions, one per regime.
      The regimes that share one function (the same object) are `vmap`ped together, so a
      group whose loss reads less of the batch does not pay for the others' (the
      zero-shot loss of a one-layer model does not read the context).
    sample_batch: `sample(key, step) -> batch`, shared by all regimes.
    optimizer: an optax transformation without a mask; each regime's frozen gradients are
      zeroed before it, as `regimes.make_optimizer` does with a mask.
    masks: the trainable masks, boolean arrays of shape `(R,)` (`regimes.stack_masks`).
    loss_args: a PyTree of arrays with a leading axis `R`.
    names: the regimes' names, for log messages.
  """

  loss_fn: JointLossFn | tuple[JointLossFn, ...]
  sample_batch: BatchSampler
  optimizer: optax.GradientTransformation
  masks: regimes.Mask
  loss_args: Any
  names: tuple[str, ...]

  def __post_init__(self):
    if isinstance(self.loss_fn, tuple) and len(self.loss_fn) != len(self.names):
      raise ValueError(f'JointTrainer has {len(self.names)} regimes ({", ".join(self.names)}) '
                       f'but {len(self.loss_fn)} loss functions. Pass one function, or one '
                       'per regime.')
    sizes = {name: jnp.shape(flag) for name, flag in self.masks.items()}
    sizes.update({f'loss_args leaf {i}': jnp.shape(leaf)[:1] for i, leaf in
                  enumerate(jax.tree_util.tree_leaves(self.loss_args))})
    expected = (len(self.names),)
    wrong = {where: size for where, size in sizes.items() if size != expected}
    if wrong:
      raise ValueError(f'JointTrainer has {len(self.names)} regimes ({", ".join(self.names)}), '
                       f'so every mask entry and loss_args leaf needs a leading axis of that '
                       f'size; got {wrong}.')

  @property
  def num_regimes(self) -> int:
    return len(self.names)

  def _optimizer(self, mask: regimes.Mask) -> optax.GradientTransformation:
    return optax.chain(regimes.zero_frozen_gradients(mask), self.optimizer)

  def init(self, params: model_lib.Params, key: Array) -> TrainState:
    """Starts every regime from the same `params` with a fresh optimizer state."""
    params_R = jax.tree_util.tree_map(
        lambda p: jnp.broadcast_to(p, (self.num_regimes,) + jnp.shape(p)), params)
    opt_state_R = jax.vmap(lambda mask, p: self._optimizer(mask).init(p))(self.masks, params_R)
    return TrainState(params=params_R, opt_state=opt_state_R, key=key,
                      step=jnp.zeros((), jnp.int32),
                      nonfinite_step=-jnp.ones((self.num_regimes,), jnp.int32))

  def _loss_groups(self) -> list[tuple[JointLossFn, np.ndarray]]:
    """Returns each distinct loss function with the indices of its regimes."""
    if not isinstance(self.loss_fn, tuple):
      return [(self.loss_fn, np.arange(self.num_regimes))]
    groups = {}
    for index, loss_fn in enumerate(self.loss_fn):
      groups.setdefault(id(loss_fn), (loss_fn, []))[1].append(index)
    return [(loss_fn, np.asarray(indices)) for loss_fn, indices in groups.values()]

  def apply_batch(self, state: TrainState, batch: Batch) -> tuple[TrainState, Array]:
    """Takes one step of every regime on `batch`; returns the state and the `(R,)` losses."""

    def update_group(loss_fn, params, opt_state, mask, args):
      def update(params, opt_state, mask, args):
        return _update(lambda p: loss_fn(p, batch, state.step, args), self._optimizer(mask),
                       mask, params, opt_state)

      return jax.vmap(update)(params, opt_state, mask, args)

    regime_arrays = (state.params, state.opt_state, self.masks, self.loss_args)
    groups = self._loss_groups()
    if len(groups) == 1:
      outputs = update_group(groups[0][0], *regime_arrays)
    else:
      # Each group runs on its regimes' slice of the state. The outputs are concatenated
      # in group order, then put back in regime order.
      group_outputs = [
          update_group(loss_fn, *jax.tree_util.tree_map(lambda x, i=indices: x[i],
                                                        regime_arrays))
          for loss_fn, indices in groups]
      order = np.argsort(np.concatenate([indices for _, indices in groups]))
      outputs = jax.tree_util.tree_map(lambda *parts: jnp.concatenate(parts)[order],
                                       *group_outputs)
    params, opt_state, loss_R, finite_R = outputs
    return _next_state(state, params, opt_state, finite_R), loss_R

  def step(self, state: TrainState) -> tuple[TrainState, Array]:
    """Takes one step of every regime on the batch of `state.step`."""
    return self.apply_batch(state, _batch_of(self.sample_batch, state, state.step))

  def train_steps(self, state: TrainState, num_steps: int) -> tuple[TrainState, Array]:
    """Runs `num_steps` steps in one `lax.scan`; returns the state and `(R, T)` losses."""
    state, losses_TxR, _ = _scan_steps(self.sample_batch, self.apply_batch, state, num_steps)
    return state, losses_TxR.T

  def train_steps_averaging(self, state: TrainState, num_steps: int, reference
                            ) -> tuple[TrainState, Array, model_lib.Params]:
    """Like `train_steps`, and also sums `params - reference` after each step."""
    state, losses_TxR, total = _scan_steps(self.sample_batch, self.apply_batch, state,
                                           num_steps, reference)
    return state, losses_TxR.T, total


class TrainResult(NamedTuple):
  """The outcome of `train`; with a seed axis every array gains a leading axis `S`."""

  params: model_lib.Params
  loss_trace: np.ndarray  # Mean loss over each window of `trace_stride` steps.
  trace_steps: np.ndarray  # First step of each window.
  nonfinite_step: np.ndarray  # First NaN/inf step, -1 where the run stayed finite.


def _is_key_batch(key: Array) -> bool:
  """Tells whether `key` has a leading seed axis, for typed and raw `uint32` keys."""
  if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    return key.ndim == 1
  return key.ndim == 2


def window_means(losses: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
  """Averages the last axis of `losses` over consecutive windows of `stride` steps."""
  num_steps = losses.shape[-1]
  starts = np.arange(0, num_steps, stride)
  means = np.stack([losses[..., s:s + stride].mean(axis=-1) for s in starts], axis=-1)
  return means, starts


def train(trainer: Trainer | JointTrainer, params: model_lib.Params, key: Array, num_steps: int, *,
          trace_stride: int = 10, log_every: int = 500, name: str = 'train',
          seeds: np.ndarray | None = None, average_steps: int = 0,
          fast_compile: bool = False) -> TrainResult:
  """Runs `num_steps` steps from `params`, logging progress.

  Args:
    trainer: the run's loss, data, optimizer and mask. A `JointTrainer` trains its
      regimes together, so every returned array gains a regime axis `R` after the seed
      axis (if any).
    params: starting parameters; with several seeds, either shared (no seed axis) or
      with a leading seed axis matching `key`.
    key: one PRNG key, or keys with a leading seed axis `S` to train `S` seeds at once
      in one compiled `vmap`.
    num_steps: the number of optimizer steps, at least 1.
    trace_stride: the window of the loss trace, in steps.
    log_every: steps between progress lines; each segment of this many steps is one
      compiled scan.
    name: the run's name in log lines.
    seeds: seed labels for messages, one per key; defaults to 0..S-1.
    average_steps: if positive, the returned parameters are the mean of the iterates after
      each of the last `average_steps` steps (Polyak-Ruppert tail averaging), which
      removes most of the step-to-step noise of SGD around its stationary point; 0 (the
      default) returns the last iterate. Frozen parameters stay bit-identical either way.
    fast_compile: compile the scan with `compiler_options(fast_compile=True)`, for a run
      whose steps take less time than their compilation (population training).

  Returns:
    The final (or averaged) parameters, the loss trace and the first non-finite step of
    each seed.
  """
  for arg, value in (('num_steps', num_steps), ('trace_stride', trace_stride),
                     ('log_every', log_every)):
    if value < 1:
      raise ValueError(f'{arg} must be >= 1, got {value}.')
  if not 0 <= average_steps <= num_steps:
    raise ValueError(f'average_steps must be in [0, num_steps={num_steps}], got '
                     f'{average_steps}.')

  if _is_key_batch(key):
    num_seeds = key.shape[0]
    params_batched = params['W_V'].ndim == 5
    init = jax.vmap(trainer.init, in_axes=(0 if params_batched else None, 0))
    train_steps = jax.vmap(trainer.train_steps, in_axes=(0, None))
    train_steps_averaging = jax.vmap(trainer.train_steps_averaging, in_axes=(0, None, 0))
  else:
    num_seeds = 1
    init = trainer.init
    train_steps, train_steps_averaging = trainer.train_steps, trainer.train_steps_averaging
  # One compiled call, because op by op the initial state compiles several small programs.
  state = jax.jit(init)(params, key)
  options = compiler_options(fast_compile=fast_compile)
  run = jax.jit(train_steps, static_argnums=1, compiler_options=options)
  run_averaging = jax.jit(train_steps_averaging, static_argnums=1, compiler_options=options)
  if seeds is None:
    seeds = np.arange(num_seeds)

  labels = [f'seed {seed}' for seed in seeds]
  if isinstance(trainer, JointTrainer):
    labels = [f'{label}, regime {regime}' for label in labels for regime in trainer.names]

  losses = []
  start_time = time.perf_counter()
  done = 0
  reported = np.zeros(len(labels), bool)
  averaging_start = num_steps - average_steps
  reference = deviation_sum = None
  while done < num_steps:
    segment = min(log_every, num_steps - done)
    if done < averaging_start:
      segment = min(segment, averaging_start - done)
      state, segment_losses = run(state, segment)
    else:
      if reference is None:
        reference = state.params
        deviation_sum = jax.tree_util.tree_map(jnp.zeros_like, reference)
      state, segment_losses, segment_sum = run_averaging(state, segment, reference)
      deviation_sum = jax.tree_util.tree_map(jnp.add, deviation_sum, segment_sum)
    segment_losses = np.asarray(segment_losses)
    losses.append(segment_losses)
    done += segment

    elapsed = time.perf_counter() - start_time
    rate = done / elapsed
    eta = (num_steps - done) / rate
    logging.info('%s: step %d/%d, loss %.5g, %.1f steps/s, ETA %.0f s', name, done, num_steps,
                 float(np.mean(segment_losses[..., -1])), rate, eta)

    nonfinite = np.asarray(state.nonfinite_step).reshape(-1)
    for index in np.flatnonzero((nonfinite >= 0) & ~reported):
      logging.warning('%s: diverged: NaN or inf loss or gradient at step %d, %s.', name,
                      nonfinite[index], labels[index])
    reported |= nonfinite >= 0
    if np.all(reported):
      logging.warning('%s: every run diverged; stopping at step %d.', name, done)
      break

  all_losses = np.concatenate(losses, axis=-1)
  loss_trace, trace_steps = window_means(all_losses, trace_stride)
  params = state.params
  if reference is not None and done == num_steps:
    params = average_params(reference, deviation_sum, average_steps)
  return TrainResult(params=params, loss_trace=loss_trace, trace_steps=trace_steps,
                     nonfinite_step=np.asarray(state.nonfinite_step))


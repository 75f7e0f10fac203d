r"""Sweeps of the reference experiment over a grid of settings and many seeds.

A sweep config (see `runs/sweep_example.py`) has five fields:

- `base`: an experiment config (`runs/paper.py`), shared by every grid point;
- `grid`: lists of values keyed by field path of `base`, for example
  `grid.noise_std = (0.1 ** 0.5, 0.5)` and `grid.finetune.n_shots = (10, 20)`. The sweep
  runs their cartesian product. Axes are ordered by field path, because ConfigDict sorts
  its fields. Two more keys exist: `learning_rate` sets the pretraining and fine-tuning
  rates together, and `regime` (values such as `zs_v`) fine-tunes one regime per grid point,
  whose model is then named `finetuned`;
- `num_seeds`: the sweep runs seeds `base.seed`, ..., `base.seed + num_seeds - 1`;
- `seeds_per_chunk`: seeds per chunk of work, 0 for all seeds in one chunk;
- `distributed`: whether to call `jax.distributed.initialize()` before anything else, for
  a run over several processes or hosts. The command line passes it
  `--coordinator_address`, `--num_processes` and `--process_id`, which SLURM, Open MPI
  and TPU pods leave unset.

Seed `s` uses `jax.random.PRNGKey(s)` split into the same six keys as `experiment.run`, so
each seed of a sweep gives the numbers of `experiment.run` with `config.seed = s`, up to
float rounding.

A chunk is one grid point and one block of seeds. Every seed of a chunk trains in one
compiled call, `vmap` over seeds inside `jit`, and the seed axis is sharded over all devices
of a 1-D mesh with axis `seed`. The fine-tuning regimes of a grid point train together, on
shared batches, as in `experiment.finetune_all`. A block whose size is not a multiple of the device count is
padded with copies of its last seed, and the copies' results are discarded.

`run(config, workdir)` writes:

- `sweep.json`: the config, the grid axes, the grid points with their models and chunks.
  A re-run with another config is rejected, except for the fields of `RUN_ONLY_FIELDS`:
  a re-run with a larger `num_seeds` keeps the finished chunks and adds the new seeds;
- `chunks/<chunk>.npz`: the results of one chunk, written in one atomic rename when the
  chunk finishes, so a re-run skips it and never reads it half-written. `<chunk>` is
  `g<grid index>_s<first seed>-<last seed>`. Its arrays are `test_error` and `stderr`
  (model, seed, task, n), `status`, `nonfinite_step` and `final_train_loss` (model, seed),
  `seeds`, `theta0` (seed, d), `params/<model>/<leaf>`, `loss_trace/<model>`,
  `trace_steps/<model>`, and `meta`, a JSON string with the grid point and model names;
- `pretrained/<hash>_s<first seed>-<last seed>.npz`: pretrained models, shared by grid
  points that differ only in fine-tuning and evaluation fields;
- `summary.md` and, if `base.plots` is true, `figures/`, from `aggregate.write_report`.

A sweep stores test errors, parameters and loss traces. It does not check the expected
findings or compute theory curves, as `experiment.run` does.

With several processes, the mesh spans the devices of all of them, and every process runs
each chunk's programs on its own devices. Process 0 writes the files, after gathering the
results from the others. Before any work, `check_processes` checks that every process
runs the same config and can read the files of process 0.

Command line:

  python -m lafit.sweep --config=runs/sweep_example.py --workdir=DIR

Over two processes on one machine (the tests run it with 2 host devices each):

  python -m lafit.sweep --config=runs/sweep_example.py --workdir=DIR \
      --config.distributed=True --coordinator_address=127.0.0.1:12345 \
      --num_processes=2 --process_id=0   # and --process_id=1
"""

import collections
import dataclasses
import hashlib
import itertools
import json
import os
import time
from typing import Any, Callable

from absl import app
from absl import flags
from absl import logging
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np

from lafit import aggregate
from lafit import cache
from lafit import cli
from lafit import config as config_lib
from lafit import data as data_lib
from lafit import evaluate
from lafit import experiment
from lafit import io
from lafit import losses
from lafit import model as model_lib
from lafit import regimes
from lafit import theory
from lafit import train as train_lib

SWEEP_FIELDS = ('base', 'grid', 'num_seeds', 'seeds_per_chunk', 'distributed')
SEED_AXIS = 'seed'
FINETUNED = 'finetuned'

# Grid keys that set more than one field of the base config.
LEARNING_RATE_KEY = 'learning_rate'
REGIME_KEY = 'regime'
ALIAS_TARGETS = {
    LEARNING_RATE_KEY: ('pretrain.learning_rate', 'finetune.learning_rate'),
    REGIME_KEY: ('finetune.losses', 'finetune.trainable'),
}

# Base fields a grid must not vary, and why.
FIXED_FIELDS = {
    'seed': 'seeds come from num_seeds',
    'eval.n_max': 'every grid point shares the n axis',
    'eval.tasks': 'every grid point shares the task axis',
    'plots': 'it changes no result',
    'log_every': 'it changes no result',
}

# Sweep fields that a re-run may change. They change how a sweep runs, or how many seeds it
# has, but not the results of any seed: a chunk is named by its grid point and seeds.
RUN_ONLY_FIELDS = ('distributed', 'num_seeds', 'seeds_per_chunk', 'base.log_every',
                   'base.plots')

# Base fields that pretraining does not read; the pretrained cache ignores them.
NOT_PRETRAINING_FIELDS = ('seed', 'finetune', 'eval', 'plots', 'log_every')


# ---------------------------------------------------------------------------
# The plan: grid points and chunks, built and validated without running JAX.


@dataclasses.dataclass(frozen=True)
class GridPoint:
  """One setting of the grid axes and the experiment config it gives."""

  index: int
  axis_indices: tuple[int, ...]
  values: dict[str, Any]
  config: ml_collections.ConfigDict
  regimes: tuple[tuple[str, str, str], ...]  # (model name, loss, trainable)

  @property
  def models(self) -> tuple[str, ...]:
    return (experiment.PRETRAINED, *(name for name, _, _ in self.regimes))


@dataclasses.dataclass(frozen=True)
class Chunk:
  """One grid point and one block of seeds: the unit of work that is saved and skipped."""

  point: GridPoint
  seeds: tuple[int, ...]

  @property
  def name(self) -> str:
    return f'g{self.point.index:04d}_s{self.seeds[0]:04d}-{self.seeds[-1]:04d}'


@dataclasses.dataclass(frozen=True)
class SweepPlan:
  """The validated grid of a sweep config."""

  config: ml_collections.ConfigDict
  axes: tuple[tuple[str, tuple[Any, ...]], ...]  # (grid key, values)
  points: tuple[GridPoint, ...]
  seed_blocks: tuple[tuple[int, ...], ...]

  @property
  def chunks(self) -> list[Chunk]:
    return [Chunk(point, block) for point in self.points for block in self.seed_blocks]

  @property
  def models(self) -> list[str]:
    """Every model name of the grid, in order of first appearance."""
    names = {}
    for point in self.points:
      names.update(dict.fromkeys(point.models))
    return list(names)


def _fail(field: str, value, valid: str) -> None:
  raise ValueError(f'config.{field}={value!r} is invalid: {valid}.')


def _flatten_grid(grid: ml_collections.ConfigDict, prefix: str = '') -> list[tuple[str, Any]]:
  """Returns `(field path, values)` for every leaf of `grid`, sorted by ConfigDict."""
  leaves = []
  for key, value in grid.items():
    path = f'{prefix}{key}'
    if isinstance(value, ml_collections.ConfigDict):
      leaves.extend(_flatten_grid(value, prefix=f'{path}.'))
    else:
      leaves.append((path, value))
  return leaves


def _base_leaves(base: ml_collections.ConfigDict) -> dict[str, Any]:
  leaves = {}
  for key, value in base.items():
    if isinstance(value, ml_collections.ConfigDict):
      leaves.update({f'{key}.{k}': v for k, v in _base_leaves(value).items()})
    else:
      leaves[key] = value
  return leaves


def _normalize_grid_value(base_value, value):
  """Turns lists into tuples, and a string into a 1-tuple where the base field is a tuple."""
  if isinstance(base_value, (tuple, list)) and isinstance(value, str):
    return (value,)
  if isinstance(value, list):
    return tuple(value)
  return value


def _regime_names(parameterization: str) -> list[str]:
  # An invalid parameterization is reported by the config check of its grid point.
  trainables = regimes.TRAINABLE.get(parameterization, regimes.TRAINABLE['merged'])
  return [f'{loss}_{trainable}' for loss in losses.FINETUNE_LOSS_KINDS for trainable in trainables]


def _parse_regime(value, parameterization: str = 'merged') -> tuple[str, str]:
  """Splits a regime name `<loss>_<trainable>` such as `zsfs_kq`."""
  valid = _regime_names(parameterization)
  if value not in valid:
    _fail(f'grid.{REGIME_KEY}', value,
          f'with parameterization={parameterization!r} the valid regimes are '
          f'{", ".join(valid)}')
  loss, trainable = value.split('_')
  return loss, trainable


def _check_grid_axes(config: ml_collections.ConfigDict) -> tuple[tuple[str, tuple], ...]:
  """Validates the grid keys and value lists; returns the axes."""
  base_leaves = _base_leaves(config.base)
  axes = []
  for field, values in _flatten_grid(config.grid):
    grid_field = f'grid.{field}'
    if field in FIXED_FIELDS:
      _fail(grid_field, values, f'a grid cannot vary {field} because {FIXED_FIELDS[field]}')
    if field not in base_leaves and field not in ALIAS_TARGETS:
      valid = sorted(set(base_leaves) - set(FIXED_FIELDS)) + sorted(ALIAS_TARGETS)
      _fail(grid_field, values, f'{field} is not a field of config.base; valid grid keys are '
            f'{", ".join(valid)}')
    if not isinstance(values, (tuple, list)) or not values:
      _fail(grid_field, values, 'expected a non-empty list or tuple of values')
    base_value = base_leaves.get(field)
    normalized = tuple(_normalize_grid_value(base_value, v) for v in values)
    for i, value in enumerate(normalized):
      if value in normalized[:i]:
        _fail(grid_field, values, f'the value {value!r} appears twice')
      try:
        json.dumps(io.to_jsonable(value))
      except TypeError:
        _fail(grid_field, values, f'the value {value!r} is not a number, string or tuple')
    if field == REGIME_KEY and 'parameterization' not in dict(axes):
      for value in normalized:
        _parse_regime(value, config.base.parameterization)
    axes.append((field, normalized))

  grid_fields = [field for field, _ in axes]
  for alias, targets in ALIAS_TARGETS.items():
    both = [target for target in targets if target in grid_fields]
    if alias in grid_fields and both:
      _fail(f'grid.{alias}', dict(axes)[alias],
            f'grid.{alias} sets {", ".join(targets)}, so the grid cannot also vary '
            f'{", ".join(both)}')
  return tuple(axes)


def _set_field(config_dict: dict, field: str, value) -> None:
  *parents, leaf = field.split('.')
  target = config_dict
  for parent in parents:
    target = target[parent]
  target[leaf] = value


def _point_config(base: ml_collections.ConfigDict, values: dict[str, Any]):
  """Returns the base config with the grid values of one point applied."""
  config_dict = base.to_dict()
  for field, value in values.items():
    if field == LEARNING_RATE_KEY:
      _set_field(config_dict, 'pretrain.learning_rate', value)
      _set_field(config_dict, 'finetune.learning_rate', value)
    elif field == REGIME_KEY:
      loss, trainable = _parse_regime(value, values.get('parameterization',
                                                        base.parameterization))
      _set_field(config_dict, 'finetune.losses', (loss,))
      _set_field(config_dict, 'finetune.trainable', (trainable,))
    else:
      _set_field(config_dict, field, value)
  return ml_collections.ConfigDict(config_dict)


def _describe_point(values: dict[str, Any]) -> str:
  if not values:
    return 'the only grid point'
  return 'the grid point ' + ', '.join(f'{field}={value!r}' for field, value in values.items())


def _in_base(error: ValueError) -> str:
  """Rewrites an experiment config error, `config.d=...`, to name `config.base.d`."""
  message = str(error)
  return 'config.base.' + message[len('config.'):] if message.startswith('config.') else message


def _check_int(config, field: str, minimum: int) -> int:
  value = config[field]
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    _fail(field, value, f'expected an integer >= {minimum}')
  return value


def make_plan(config: ml_collections.ConfigDict) -> SweepPlan:
  """Validates a sweep config and lists its grid points and chunks; compiles nothing.

  Raises:
    ValueError: naming the field, its value and the valid range, for an unknown or
      missing field, an invalid grid key or value list, or a grid point whose experiment
      config `lafit.config.validate` rejects.
  """
  for field in config.keys():
    if field not in SWEEP_FIELDS:
      raise ValueError(f'config.{field} is not a sweep field; valid fields are '
                       f'{", ".join(SWEEP_FIELDS)}.')
  for field in SWEEP_FIELDS:
    if field not in config:
      raise ValueError(f'config.{field} is missing; a sweep config needs the fields '
                       f'{", ".join(SWEEP_FIELDS)}.')
  for field in ('base', 'grid'):
    if not isinstance(config[field], ml_collections.ConfigDict):
      _fail(field, config[field], 'expected a ConfigDict')
  num_seeds = _check_int(config, 'num_seeds', 1)
  seeds_per_chunk = _check_int(config, 'seeds_per_chunk', 0)
  if not isinstance(config.distributed, bool):
    _fail('distributed', config.distributed, 'expected True or False')

  try:
    config_lib.validate(config.base)
  except ValueError as error:
    raise ValueError(_in_base(error)) from error
  if config.base.eval.method == 'both':
    _fail('base.eval.method', 'both', 'a sweep stores one test error per model; use auto, '
          'exact or monte_carlo')
  axes = _check_grid_axes(config)

  points = []
  for index, axis_indices in enumerate(itertools.product(*(range(len(v)) for _, v in axes))):
    values = {field: axis_values[i] for (field, axis_values), i in zip(axes, axis_indices)}
    point_config = _point_config(config.base, values)
    try:
      config_lib.validate(point_config)
    except ValueError as error:
      raise ValueError(f'{_in_base(error)} The value comes from {_describe_point(values)}.'
                      ) from error
    point_regimes = tuple(experiment.regime_names(point_config))
    if REGIME_KEY in values:
      point_regimes = tuple((FINETUNED, loss, trainable) for _, loss, trainable in point_regimes)
    points.append(GridPoint(index=index, axis_indices=axis_indices, values=values,
                            config=point_config, regimes=point_regimes))

  base_seed = config.base.seed
  block_size = seeds_per_chunk or num_seeds
  seeds = list(range(base_seed, base_seed + num_seeds))
  seed_blocks = tuple(tuple(seeds[i:i + block_size]) for i in range(0, num_seeds, block_size))
  return SweepPlan(config=config, axes=axes, points=tuple(points), seed_blocks=seed_blocks)


# ---------------------------------------------------------------------------
# Devices: the seed mesh, placing host arrays on it and fetching results.


def make_mesh() -> Mesh:
  """Returns a 1-D mesh over every device (of every host), with axis `seed`."""
  return Mesh(np.asarray(jax.devices()), (SEED_AXIS,))


def _place(host_tree, sharding: NamedSharding):
  """Places host arrays with a leading seed axis on the mesh, split along that axis."""
  if jax.process_count() == 1:
    return jax.device_put(host_tree, sharding)
  # Every process has the whole host array and builds the shards of its own devices.
  return jax.tree_util.tree_map(
      lambda x: jax.make_array_from_callback(x.shape, sharding, lambda index: x[index]),
      host_tree)


def _fetch(tree, num_real: int):
  """Copies sharded arrays to host memory and drops the padded seeds."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    tree = multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree_util.tree_map(lambda x: np.asarray(x)[:num_real], jax.device_get(tree))


def _sync_processes(name: str) -> None:
  """Waits for every process, so that all of them see the files process 0 just wrote."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def _finite_mean(values: np.ndarray) -> float:
  finite = values[np.isfinite(values)]
  return float(finite.mean()) if finite.size else float('nan')


def _pad_seeds(seeds: tuple[int, ...], num_devices: int) -> np.ndarray:
  padded_size = -(-len(seeds) // num_devices) * num_devices
  return np.asarray(seeds + (seeds[-1],) * (padded_size - len(seeds)), np.int32)


def _pad_host(tree, padded_size: int):
  """Pads the leading seed axis with copies of the last seed."""

  def pad(x):
    x = np.asarray(x)
    extra = padded_size - x.shape[0]
    return np.concatenate([x, np.repeat(x[-1:], extra, axis=0)]) if extra else x

  return jax.tree_util.tree_map(pad, tree)


# ---------------------------------------------------------------------------
# Training and evaluation of one grid point, all seeds of a block at once.


@dataclasses.dataclass
class PhaseResult:
  """A trained model for every seed of a block; arrays keep the padded seeds."""

  params: model_lib.Params  # Sharded, leading seed axis.
  loss_trace: np.ndarray  # (S, windows), host, NaN after an early stop.
  trace_steps: np.ndarray
  nonfinite_step: np.ndarray  # (S,), host; -1 where the seed stayed finite.


def pretrain_trainer(config: ml_collections.ConfigDict) -> train_lib.Trainer:
  """Builds the pretraining `Trainer` of `experiment.pretrain`."""
  return experiment.pretrain_trainer(config)


def finetune_trainer(config: ml_collections.ConfigDict, regime_list, theta0,
                     dataset) -> train_lib.JointTrainer:
  """Builds the joint fine-tuning of `experiment.finetune_all` for one seed's task."""
  return experiment.joint_finetune_trainer(config, list(regime_list),
                                           experiment.finetune_sampler(config, theta0, dataset))


class GridPointRunner:
  """Compiled training and evaluation of one grid point config, reused by its seed blocks."""

  def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh):
    self.config = config
    self.num_devices = mesh.devices.size
    self.sharding = NamedSharding(mesh, PartitionSpec(SEED_AXIS))
    self._compiled: dict[Any, Callable] = {}

  def _jit(self, cache_key, fn, static_argnums=(), compiler_options=None):
    if cache_key not in self._compiled:
      self._compiled[cache_key] = jax.jit(fn, static_argnums=static_argnums,
                                          out_shardings=self.sharding,
                                          compiler_options=compiler_options)
    return self._compiled[cache_key]

  def setup(self, padded_seeds: np.ndarray) -> experiment.RunInputs:
    """Draws each seed's keys, initial parameters, target task and dataset in one call.

    Each seed's arrays are those of `experiment.run` for that seed, with a leading seed
    axis.
    """
    config = self.config

    def setup_one(seed):
      return experiment.draw_inputs(config, jax.random.PRNGKey(seed))

    return self._jit('setup', jax.vmap(setup_one))(_place(padded_seeds, self.sharding))

  def _make_trainer(self, regime_list: tuple[tuple[str, str, str], ...] | None, seed_data):
    """Builds one seed's trainer: pretraining for `None`, else joint fine-tuning."""
    if regime_list is None:
      return pretrain_trainer(self.config)
    theta0, dataset = seed_data
    return finetune_trainer(self.config, regime_list, theta0, dataset)

  def train_phase(self, regime_list: tuple[tuple[str, str, str], ...] | None, params, key,
                  seed_data, num_real: int, log_prefix: str) -> PhaseResult:
    """Trains every seed from `params` in segments of `log_every` steps, like `train.train`.

    `regime_list` holds `(model name, loss, trainable)` triples, trained together on shared
    batches as in `experiment.finetune_all`, or is `None` for pretraining. Each seed
    fine-tunes on its own task: its trainer is built inside `vmap` from its slice of
    `seed_data`, `(theta0, dataset)`. Training stops early once every real seed has
    diverged in every regime, and the loss trace is NaN after that step. With regimes,
    the arrays have a regime axis after the seed axis; `split_regimes` separates them.
    """
    config = self.config
    phase = config.pretrain if regime_list is None else config.finetune
    num_steps, average_steps = phase.num_steps, phase.average_steps
    if regime_list is None:
      name = experiment.PRETRAINED
    else:
      name = 'finetune'
      if [regime[0] for regime in regime_list] == [FINETUNED]:
        name = f'{FINETUNED} ({regime_list[0][1]}, {regime_list[0][2]})'

    def init_one(params_one, key_one, data_one):
      return self._make_trainer(regime_list, data_one).init(params_one, key_one)

    def segment_one(state, data_one, length):
      return self._make_trainer(regime_list, data_one).train_steps(state, length)

    def averaging_segment_one(state, data_one, length, reference):
      trainer = self._make_trainer(regime_list, data_one)
      return trainer.train_steps_averaging(state, length, reference)

    init = self._jit((regime_list, 'init'), jax.vmap(init_one))
    options = train_lib.compiler_options()
    segment = self._jit((regime_list, 'segment'),
                        jax.vmap(segment_one, in_axes=(0, 0, None)), static_argnums=2,
                        compiler_options=options)
    averaging_segment = self._jit(
        (regime_list, 'averaging_segment'),
        jax.vmap(averaging_segment_one, in_axes=(0, 0, None, 0)), static_argnums=2,
        compiler_options=options)
    state = init(params, key, seed_data)

    losses_list = []
    start_time = time.perf_counter()
    done = 0
    averaging_start = num_steps - average_steps
    reference = deviation_sum = None
    while done < num_steps:
      length = min(config.log_every, num_steps - done)
      if done < averaging_start:
        length = min(length, averaging_start - done)
        state, segment_losses = segment(state, seed_data, length)
      else:
        if reference is None:
          reference = state.params
          deviation_sum = jax.tree_util.tree_map(jnp.zeros_like, reference)
        state, segment_losses, segment_sum = averaging_segment(state, seed_data, length,
                                                               reference)
        deviation_sum = jax.tree_util.tree_map(jnp.add, deviation_sum, segment_sum)
      losses_list.append(np.asarray(_fetch(segment_losses, num_real)))
      done += length
      rate = done / (time.perf_counter() - start_time)
      logging.info('%s %s: step %d/%d, mean loss %.5g, %.1f steps/s, ETA %.0f s', log_prefix,
                   name, done, num_steps, _finite_mean(losses_list[-1][..., -1]), rate,
                   (num_steps - done) / rate)
      nonfinite = _fetch(state.nonfinite_step, num_real)
      if np.all(nonfinite >= 0) and done < num_steps:
        logging.warning('%s %s: every seed diverged; stopping at step %d.', log_prefix, name,
                        done)
        break

    seed_losses = np.concatenate(losses_list, axis=-1)
    if seed_losses.shape[-1] < num_steps:
      missing = num_steps - seed_losses.shape[-1]
      pad_width = [(0, 0)] * (seed_losses.ndim - 1) + [(0, missing)]
      seed_losses = np.pad(seed_losses, pad_width, constant_values=np.nan)
    loss_trace, trace_steps = train_lib.window_means(seed_losses, config.trace_stride)
    params = state.params
    if reference is not None and done == num_steps:
      average = self._jit('average_params', train_lib.average_params, static_argnums=2)
      params = average(reference, deviation_sum, average_steps)
    return PhaseResult(params=params, loss_trace=loss_trace, trace_steps=trace_steps,
                       nonfinite_step=np.asarray(_fetch(state.nonfinite_step, num_real)))

  def split_regimes(self, joint: PhaseResult, num_regimes: int) -> list[PhaseResult]:
    """Splits the result of a joint fine-tuning phase into one result per regime."""

    def take(params, r):
      return jax.tree_util.tree_map(lambda leaf: leaf[:, r], params)

    split = self._jit('split_regimes', take, static_argnums=1)
    return [PhaseResult(params=split(joint.params, r), loss_trace=joint.loss_trace[:, r],
                        trace_steps=joint.trace_steps, nonfinite_step=joint.nonfinite_step[:, r])
            for r in range(num_regimes)]

  def evaluate(self, params, theta0, key_eval, num_real: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns the test error and its standard error, shape (S, tasks, n_max + 1) each.

    The exact risk has a standard error of 0. Monte Carlo uses the keys and prompt counts
    of `experiment.monte_carlo_curves`.
    """
    config = self.config
    method = experiment.eval_method(config)
    n_shots = jnp.arange(config.eval.n_max + 1)

    def evaluate_one(params_one, theta0_one, key_one):
      means, stderrs = [], []
      for index, task in enumerate(config.eval.tasks):
        if method == 'exact':
          theta = experiment.eval_task_theta(task, theta0_one)
          curve = jax.vmap(lambda n, theta=theta: theory.population_risk_of_params(
              params_one, n, noise_std=config.noise_std, x_std=config.x_std,
              theta=theta))(n_shots)
          means.append(curve)
          stderrs.append(jnp.zeros_like(curve))
        else:
          curve = evaluate.monte_carlo_test_error(
              params_one, jax.random.fold_in(key_one, index),
              data_lib.task_sampler(task, theta0_one), n_max=config.eval.n_max,
              num_prompts=config.eval.num_prompts * config.eval.num_seeds,
              x_std=config.x_std, noise_std=config.noise_std,
              chunk_size=config.eval.chunk_size)
          means.append(curve.mean)
          stderrs.append(curve.stderr)
      return jnp.stack(means), jnp.stack(stderrs)

    # The exact risk runs for less time than it takes to compile.
    options = train_lib.compiler_options(fast_compile=True) if method == 'exact' else None
    compiled = self._jit('evaluate', jax.vmap(evaluate_one), compiler_options=options)
    return _fetch(compiled(params, theta0, key_eval), num_real)


_RUNNER_CACHE_SIZE = 8
_runner_cache: collections.OrderedDict = collections.OrderedDict()


def runner_for(config: ml_collections.ConfigDict, mesh: Mesh) -> GridPointRunner:
  """Returns the runner of a grid point config on `mesh`.

  The last few runners stay in memory, so a second sweep of the same configs in one Python
  process (a re-run after an interruption, a notebook) reuses their compiled functions.
  """
  key = (json.dumps(io.to_jsonable(config.to_dict()), sort_keys=True),
         tuple(device.id for device in mesh.devices.flat))
  if key in _runner_cache:
    _runner_cache.move_to_end(key)
  else:
    _runner_cache[key] = GridPointRunner(config, mesh)
    if len(_runner_cache) > _RUNNER_CACHE_SIZE:
      _runner_cache.popitem(last=False)
  return _runner_cache[key]


# ---------------------------------------------------------------------------
# One chunk: pretrain (or reuse), fine-tune every regime, evaluate, mark divergence.


def pretraining_hash(config: ml_collections.ConfigDict) -> str:
  """Hashes every base field that pretraining reads; equal hashes share pretrained models."""
  config_dict = {k: v for k, v in config.to_dict().items() if k not in NOT_PRETRAINING_FIELDS}
  text = json.dumps(io.to_jsonable(config_dict), sort_keys=True)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def pretrained_path(workdir: str, chunk: Chunk) -> str:
  name = f'{pretraining_hash(chunk.point.config)}_s{chunk.seeds[0]:04d}-{chunk.seeds[-1]:04d}'
  return os.path.join(workdir, 'pretrained', f'{name}.npz')


def chunk_path(workdir: str, chunk: Chunk) -> str:
  return os.path.join(workdir, 'chunks', f'{chunk.name}.npz')


def _pretrain_block(runner: GridPointRunner, chunk: Chunk, setup: experiment.RunInputs, num_real: int,
                    workdir: str, is_writer: bool) -> PhaseResult:
  """Pretrains the seeds of `chunk`, or loads them if another grid point already did."""
  path = pretrained_path(workdir, chunk)
  if os.path.exists(path):
    logging.info('%s: reusing the pretrained models in %s.', chunk.name, path)
    arrays = io.read_npz(path)
    params = {k.split('/', 1)[1]: v for k, v in arrays.items() if k.startswith('params/')}
    padded_size = setup.theta0.shape[0]
    return PhaseResult(params=_place(_pad_host(params, padded_size), runner.sharding),
                       loss_trace=arrays['loss_trace'], trace_steps=arrays['trace_steps'],
                       nonfinite_step=arrays['nonfinite_step'])

  result = runner.train_phase(None, setup.init, setup.key_pretrain, (), num_real,
                              chunk.name)
  # With several processes, `_fetch` gathers from all of them, so every process calls it.
  params = _fetch(result.params, num_real)
  if is_writer:
    arrays = {f'params/{k}': v for k, v in params.items()}
    arrays.update(loss_trace=result.loss_trace, trace_steps=result.trace_steps,
                  nonfinite_step=result.nonfinite_step)
    io.write_npz(path, arrays)
  # The name leaves out the workdir, which processes may reach by different paths.
  _sync_processes(f'pretrained {os.path.basename(path)}')
  return result


def _status(nonfinite_step: np.ndarray, pretrain_diverged: np.ndarray | None,
            curves: np.ndarray) -> np.ndarray:
  """Returns the `aggregate.STATUS` code of each seed of one model."""
  status = np.full(nonfinite_step.shape, aggregate.STATUS['ok'], np.int8)
  status[~np.all(np.isfinite(curves), axis=(1, 2))] = aggregate.STATUS['nonfinite_eval']
  status[nonfinite_step >= 0] = aggregate.STATUS['diverged']
  if pretrain_diverged is not None:
    status[pretrain_diverged] = aggregate.STATUS['pretrain_diverged']
  return status


@dataclasses.dataclass
class ModelOutcome:
  """Evaluation results of one model for every real seed of a chunk."""

  test_error: np.ndarray  # (S, tasks, n_max + 1), NaN unless the status is ok.
  stderr: np.ndarray  # Same shape; 0 for the exact risk.
  status: np.ndarray  # (S,) `aggregate.STATUS` codes.
  nonfinite_step: np.ndarray  # (S,) first NaN or inf step, -1 if none.
  final_train_loss: np.ndarray  # (S,) mean loss of the last trace window.


def _evaluate_model(runner: GridPointRunner, name: str, result: PhaseResult | None,
                    setup: experiment.RunInputs, pretrain_diverged: np.ndarray,
                    num_real: int) -> ModelOutcome:
  """Evaluates one model; a model that was not trained or diverged for every seed gets NaN."""
  config = runner.config
  shape = (num_real, len(config.eval.tasks), config.eval.n_max + 1)
  nan_curves = np.full(shape, np.nan, np.float32)
  if result is None:
    return ModelOutcome(
        test_error=nan_curves, stderr=nan_curves,
        status=np.full(num_real, aggregate.STATUS['pretrain_diverged'], np.int8),
        nonfinite_step=np.full(num_real, -1, np.int32),
        final_train_loss=np.full(num_real, np.nan, np.float32))

  nonfinite = result.nonfinite_step.astype(np.int32)
  if np.all(nonfinite >= 0):
    curves, stderr = nan_curves, nan_curves  # Nothing finite to evaluate.
  else:
    curves, stderr = runner.evaluate(result.params, setup.theta0, setup.key_eval, num_real)
  status = _status(nonfinite, None if name == experiment.PRETRAINED else pretrain_diverged,
                   curves)
  excluded = (status != aggregate.STATUS['ok'])[:, None, None]
  return ModelOutcome(test_error=np.where(excluded, np.nan, curves),
                      stderr=np.where(excluded, np.nan, stderr), status=status,
                      nonfinite_step=nonfinite, final_train_loss=result.loss_trace[:, -1])


def run_chunk(runner: GridPointRunner, chunk: Chunk, workdir: str,
              is_writer: bool) -> dict[str, np.ndarray]:
  """Trains and evaluates every model of `chunk` for its seeds; returns the chunk's arrays.

  A model that diverged (NaN or inf loss or gradient) gets NaN test errors and a status
  that `aggregate` excludes from means. Its first non-finite step is kept.
  """
  start_time = time.perf_counter()
  config = runner.config
  point = chunk.point
  num_real = len(chunk.seeds)
  padded_seeds = _pad_seeds(chunk.seeds, runner.num_devices)
  if len(padded_seeds) > num_real:
    logging.info('%s: padding %d seeds to %d for %d devices; the padded seeds repeat seed %d '
                 'and their results are discarded.', chunk.name, num_real, len(padded_seeds),
                 runner.num_devices, chunk.seeds[-1])

  # Training: the regimes start from the same pretrained models and are trained together,
  # on the same batches.
  setup = runner.setup(padded_seeds)
  pretrained = _pretrain_block(runner, chunk, setup, num_real, workdir, is_writer)
  pretrain_diverged = pretrained.nonfinite_step >= 0
  results = {experiment.PRETRAINED: pretrained}
  if point.regimes and np.all(pretrain_diverged):
    logging.warning('%s: fine-tuning skipped because pretraining diverged for every seed.',
                    chunk.name)
  elif point.regimes:
    joint = runner.train_phase(tuple(point.regimes), pretrained.params, setup.key_finetune,
                               (setup.theta0, setup.dataset), num_real, chunk.name)
    for regime, result in zip(point.regimes, runner.split_regimes(joint, len(point.regimes))):
      results[regime[0]] = result

  # Evaluation
  arrays = {'theta0': _fetch(setup.theta0, num_real), 'seeds': np.asarray(chunk.seeds)}
  outcomes = []
  for name in point.models:
    result = results.get(name)
    outcome = _evaluate_model(runner, name, result, setup, pretrain_diverged, num_real)
    _log_divergence(chunk, name, outcome.status, outcome.nonfinite_step)
    outcomes.append(outcome)
    if result is not None:
      for leaf, value in _fetch(result.params, num_real).items():
        arrays[f'params/{name}/{leaf}'] = value
      arrays[f'loss_trace/{name}'] = result.loss_trace
      arrays[f'trace_steps/{name}'] = result.trace_steps
  for field in ModelOutcome.__dataclass_fields__:
    arrays[field] = np.stack([getattr(outcome, field) for outcome in outcomes])

  meta = {
      'chunk': chunk.name,
      'grid_index': point.index,
      'point': point.values,
      'models': list(point.models),
      'regimes': [list(r) for r in point.regimes],
      'tasks': list(config.eval.tasks),
      'seeds': list(chunk.seeds),
      'n_max': config.eval.n_max,
      'test_error_method': experiment.eval_method(config),
      'num_devices': runner.num_devices,
      # The minimum, over models, of the devices their trained parameters were split over.
      'param_devices': min(len(r.params['W_V'].sharding.device_set) for r in results.values()),
      'padded_seeds': int(len(padded_seeds)),
      'wall_time_s': time.perf_counter() - start_time,
  }
  arrays['meta'] = np.asarray(json.dumps(io.to_jsonable(meta)))
  return arrays


def _log_divergence(chunk: Chunk, name: str, status: np.ndarray,
                    nonfinite: np.ndarray) -> None:
  for seed, code, step in zip(chunk.seeds, status, nonfinite):
    if code == aggregate.STATUS['diverged']:
      logging.warning('%s %s: seed %d diverged at step %d (NaN or inf loss or gradient); its '
                      'test errors are NaN and excluded from means.', chunk.name, name, seed,
                      step)
    elif code == aggregate.STATUS['nonfinite_eval']:
      logging.warning('%s %s: seed %d trained without NaN or inf, but its test error is not '
                      'finite; its test errors are NaN and excluded from means.', chunk.name,
                      name, seed)


# ---------------------------------------------------------------------------
# The sweep: workdir, chunks in order, skipping finished ones, with progress.


def _comparable(config_dict: dict) -> dict:
  """Drops the run-only fields, which a re-run may change."""
  config_dict = json.loads(json.dumps(io.to_jsonable(config_dict)))
  for field in RUN_ONLY_FIELDS:
    *parents, leaf = field.split('.')
    target = config_dict
    for parent in parents:
      target = target.get(parent, {})
    target.pop(leaf, None)
  return config_dict


def sweep_description(plan: SweepPlan) -> dict:
  """Returns the contents of `sweep.json`, which `aggregate.load` reads."""
  return {
      'config': plan.config.to_dict(),
      'axes': [{'field': field, 'values': list(values)} for field, values in plan.axes],
      'seeds': [seed for block in plan.seed_blocks for seed in block],
      'models': plan.models,
      'tasks': list(plan.config.base.eval.tasks),
      'n_max': plan.config.base.eval.n_max,
      'points': [{
          'index': point.index,
          'axis_indices': list(point.axis_indices),
          'values': point.values,
          'models': list(point.models),
          'chunks': [Chunk(point, block).name for block in plan.seed_blocks],
      } for point in plan.points],
  }


def check_workdir(workdir: str, plan: SweepPlan) -> None:
  """Rejects a workdir that contains a single run, or a sweep of another config.

  A re-run may change the fields of `RUN_ONLY_FIELDS`: with more seeds, for example, it
  keeps the finished chunks and runs the new ones.
  """
  path = os.path.join(workdir, 'sweep.json')
  if not os.path.exists(path):
    if os.path.exists(os.path.join(workdir, 'config.json')):
      raise ValueError(f'--workdir={workdir} contains a single run of python -m lafit '
                       '(config.json): choose another --workdir for a sweep.')
    return
  stored = io.read_json(path)
  differing = io.differing_fields(_comparable(stored['config']),
                                  _comparable(plan.config.to_dict()))
  if differing:
    raise ValueError(f'--workdir={workdir} contains a sweep of a different config ({path}; '
                     f'fields that differ: {", ".join(differing)}). Choose a new --workdir '
                     f'or delete that one. A re-run may change only '
                     f'{", ".join(RUN_ONLY_FIELDS)}.')
  finished = [name for point in stored['points'] for name in point['chunks']
              if os.path.exists(os.path.join(workdir, 'chunks', f'{name}.npz'))]
  if finished and not set(finished) & {chunk.name for chunk in plan.chunks}:
    config = plan.config
    raise ValueError(
        f'--workdir={workdir} contains finished chunks of other blocks of seeds, so '
        f'num_seeds={config.num_seeds} with seeds_per_chunk={config.seeds_per_chunk} would '
        f'reuse none of them and recompute every seed. Keep seeds_per_chunk='
        f'{stored["config"]["seeds_per_chunk"]}, or choose a new --workdir. Seeds can be '
        'added to a sweep whose seeds_per_chunk is above 0, in new chunks.')


class ProcessMismatchError(ValueError):
  """The processes of a distributed sweep do not run the same sweep on a shared disk."""


def _gather_texts(text: str) -> list[str]:
  """Returns the `text` of every process, in process order. Every process must call it."""
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  data = np.frombuffer(text.encode('utf-8'), np.uint8)
  lengths = np.asarray(multihost_utils.process_allgather(np.int32(data.size))).reshape(-1)
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[:data.size] = data
  rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
  return [bytes(row[:length]).decode('utf-8') for row, length in zip(rows, lengths)]


def check_processes(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Checks that every process runs the same sweep config on one shared `workdir`.

  Every process of a distributed sweep calls it, and all of them raise the same error, so
  none is left waiting for the others. Without it, processes given different configs
  would each train their own seeds under their own settings, and process 0 would write
  the mixture.

  Raises:
    ProcessMismatchError: naming the processes and the fields that differ, or the
      processes that do not see the files of process 0 in `workdir`.
  """
  if jax.process_count() < 2:
    return
  configs = [json.loads(text) for text in _gather_texts(
      json.dumps(io.to_jsonable(config.to_dict()), sort_keys=True))]
  for index, other in enumerate(configs[1:], start=1):
    differing = io.differing_fields(configs[0], other)
    if differing:
      raise ProcessMismatchError(
          f'process {index} runs another config than process 0 (fields that differ: '
          f'{", ".join(differing)}). Every process must run the same command, apart from '
          '--process_id.')

  # Process 0 writes a random token into workdir, and every process reads it back.
  path = os.path.join(workdir, '.shared-disk-check')
  token = _gather_texts(os.urandom(8).hex())[0]
  if jax.process_index() == 0:
    io.write_text(path, token)
  _sync_processes('shared disk check written')
  try:
    with open(path, encoding='utf-8') as f:
      seen = f.read() == token
  except OSError:
    seen = False
  blind = [index for index, text in enumerate(_gather_texts(str(int(seen)))) if text != '1']
  _sync_processes('shared disk check read')
  if jax.process_index() == 0:
    os.remove(path)
  if blind:
    raise ProcessMismatchError(
        f'--workdir is not shared: process {", ".join(map(str, blind))} cannot read the '
        f'file {os.path.basename(path)} that process 0 wrote into its --workdir. Every '
        'process needs --workdir on a disk that all of them share.')


def run(config: ml_collections.ConfigDict, workdir: str) -> aggregate.SweepRecord:
  """Runs every unfinished chunk of the sweep `config` and writes the outputs to `workdir`.

  Returns:
    The sweep's results, as `aggregate.load(workdir)` returns them.
  """
  plan = make_plan(config)
  check_processes(config, workdir)
  check_workdir(workdir, plan)
  if config.base.eval.get('theory', False):
    logging.info('config.base.eval.theory has no effect, because sweeps compute no theory '
                 'curves.')
  is_writer = jax.process_index() == 0
  if is_writer:
    io.write_json(os.path.join(workdir, 'sweep.json'), sweep_description(plan))
  _sync_processes('sweep.json')
  mesh = make_mesh()
  chunks = plan.chunks
  logging.info('Sweep of %s x %s = %s on %s (%s).', cli.plural(len(plan.points), 'grid point'),
               cli.plural(config.num_seeds, 'seed'), cli.plural(len(chunks), 'chunk'),
               cli.plural(mesh.devices.size, 'device'), jax.devices()[0].platform)

  start_time = time.perf_counter()
  num_run = 0
  for number, chunk in enumerate(chunks, start=1):
    path = chunk_path(workdir, chunk)
    if os.path.exists(path):
      logging.info('Skipping finished chunk %s (%s).', chunk.name, path)
      continue
    runner = runner_for(chunk.point.config, mesh)
    logging.info('Chunk %d/%d: %s, %s, seeds %d-%d.', number, len(chunks), chunk.name,
                 _describe_point(chunk.point.values), chunk.seeds[0], chunk.seeds[-1])
    arrays = run_chunk(runner, chunk, workdir, is_writer)
    if is_writer:
      io.write_npz(path, arrays)
    _sync_processes(f'chunk {chunk.name}')
    num_run += 1
    elapsed = time.perf_counter() - start_time
    remaining = sum(1 for c in chunks[number:] if not os.path.exists(chunk_path(workdir, c)))
    logging.info('Chunk %d/%d finished: %s; elapsed %.0f s, ETA %.0f s (%s left).',
                 number, len(chunks), chunk.name, elapsed, elapsed / num_run * remaining,
                 cli.plural(remaining, 'chunk'))

  logging.info('Sweep finished in %.1f s: %s computed, %d reused; outputs are in %s.',
               time.perf_counter() - start_time, cli.plural(num_run, 'chunk'),
               len(chunks) - num_run, workdir)
  if is_writer:
    aggregate.write_report(workdir, plots=config.base.plots)
  return aggregate.load(workdir)


# ---------------------------------------------------------------------------
# Command line.



def define_flags() -> None:
  """Defines the command line's flags.

  Only the command line calls it, so that importing this module next to `lafit.__main__`
  defines no flag twice.
  """
  config_flags.DEFINE_config_file(
      'config', None, 'Sweep config file, optionally with a variant: '
      'runs/sweep_example.py:tiny. Fields can be overridden, e.g. --config.num_seeds=16.',
      lock_config=True)
  flags.DEFINE_string('workdir', None, 'Directory for the chunks, the summary and figures.')
  cache.define_flag()
  flags.DEFINE_string(
      'coordinator_address', None, 'With --config.distributed=True: host:port of the '
      'coordinator, which process 0 starts. Unset inside SLURM, Open MPI or a TPU pod, '
      'where JAX finds it.')
  flags.DEFINE_integer('num_processes', None, 'With --config.distributed=True: the number '
                       'of processes, one command each. Unset where JAX finds it.')
  flags.DEFINE_integer('process_id', None, 'With --config.distributed=True: this process\'s '
                       'index in [0, num_processes). Unset where JAX finds it.')
  flags.mark_flags_as_required(['config', 'workdir'])


def check_distributed_flags(distributed: bool, coordinator_address: str | None,
                            num_processes: int | None, process_id: int | None) -> None:
  """Rejects process flags without `distributed`, or an out-of-range process index.

  Raises:
    ValueError: naming the flag, its value and the valid range.
  """
  values = {'coordinator_address': coordinator_address, 'num_processes': num_processes,
            'process_id': process_id}
  set_flags = [(name, value) for name, value in values.items() if value is not None]
  if set_flags and not distributed:
    name, value = set_flags[0]
    raise ValueError(f'--{name}={value} needs --config.distributed=True. Without it the '
                     'sweep runs in one process.')
  if num_processes is not None and num_processes < 1:
    raise ValueError(f'--num_processes={num_processes} is invalid: expected an integer >= 1.')
  if num_processes is not None and process_id is None:
    raise ValueError(f'--num_processes={num_processes} needs --process_id too. Give both '
                     'or neither.')
  if process_id is not None and num_processes is None:
    raise ValueError(f'--process_id={process_id} needs --num_processes too. Give both or '
                     'neither.')
  if process_id is not None and not 0 <= process_id < num_processes:
    raise ValueError(f'--process_id={process_id} is invalid: expected an integer in '
                     f'[0, {num_processes - 1}] for --num_processes={num_processes}.')
  if coordinator_address is not None:
    host, _, port = coordinator_address.rpartition(':')
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
      raise ValueError(f'--coordinator_address={coordinator_address} is invalid: expected '
                       'host:port with a port in 1..65535, such as 127.0.0.1:12345.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  cli.log_progress()
  config = flags.FLAGS.config
  process = {name: flags.FLAGS[name].value
             for name in ('coordinator_address', 'num_processes', 'process_id')}
  workdir = flags.FLAGS.workdir
  # Bad input is reported as one line, before JAX starts.
  try:
    plan = make_plan(config)
    check_distributed_flags(config.distributed, **process)
    cli.check_workdir(workdir)
    check_workdir(workdir, plan)
  except ValueError as error:
    cli.fail(str(error))
  cache.enable_compilation_cache(flags.FLAGS.compilation_cache)
  if config.distributed:
    # Every process runs this same command, and --workdir must be on a disk that all of
    # them share. Inside SLURM, Open MPI or a TPU pod JAX finds the unset values.
    # NOTE: tested with several processes on one machine, not yet across hosts.
    jax.distributed.initialize(**process)
  # A process that stops early exits at once: on a normal exit, JAX's distributed runtime
  # would wait up to 5 minutes for the other processes at its shutdown barrier. They stop
  # when they lose contact with it.
  try:
    run(config, workdir)
  except KeyboardInterrupt:
    every_process = ' in every process' if config.distributed else ''
    cli.exit_now(f'Interrupted. The finished chunks are saved in {workdir}: run the same '
                 f'command{every_process} again to resume.', 130)
  except ProcessMismatchError as error:
    cli.exit_now(f'Error: {error}', 1)
  except BaseException:  # pylint: disable=broad-except
    if not config.distributed:
      raise
    logging.exception('Process %d of the sweep failed.', jax.process_index())
    cli.exit_now(f'Process {jax.process_index()} of the sweep stopped on the error above. If '
                 'another process was stopped or failed first, this one lost contact with '
                 f'it. The finished chunks are saved in {workdir}: run the same command in '
                 'every process again to resume.', 1)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)

r"""A sweep's results as one labeled array: seed means, confidence intervals, figures, tables.

`load(workdir)` reads `sweep.json` and the finished chunks of a sweep (see `lafit.sweep`)
into a `SweepRecord`. Its test errors have the dimensions

    (grid axes..., seed, model, task, n)

and each (grid point, seed, model) has a status (see `STATUS_NAMES`). Only seeds with
status `ok` enter means and confidence intervals, and every summary reports how many
seeds it used.

`mean_over_seeds` gives the mean over seeds and the Student t confidence interval
`mean +/- t_{(1 + c)/2, k - 1} * s / sqrt(k)`, with `k` the number of seeds used and `s`
their sample standard deviation (`ddof = 1`). It is NaN when `k < 2`.

Command line, which writes `summary.md` and `figures/` into the sweep's workdir:

  python -m lafit.aggregate --workdir=DIR [--n=0,10,20] [--axis=noise_std]
"""

import collections
import dataclasses
import itertools
import json
import math
import numbers
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np
from scipy import stats  # A dependency of jax, so no new install.

from lafit import cli
from lafit import io

SEED, MODEL, TASK, N = 'seed', 'model', 'task', 'n'
# Order of the dimensions after the grid axes, in `dims` and in the arrays.
TRAILING_DIMS = (SEED, MODEL, TASK, N)

# Status of one (grid point, seed, model); only `ok` enters means.
STATUS_NAMES = (
    'ok',
    'diverged',  # NaN or inf loss or gradient during training.
    'pretrain_diverged',  # A fine-tuned model whose pretrained model diverged.
    'nonfinite_eval',  # Trained without NaN or inf, but its test error is not finite.
    'absent',  # The model is not part of this grid point (a `regime` or regime-list axis).
    'missing',  # The chunk of this seed has not finished.
)
STATUS = {name: code for code, name in enumerate(STATUS_NAMES)}


def _as_coordinate(value):
  """Turns JSON lists back into tuples, so that coordinates are hashable."""
  if isinstance(value, list):
    return tuple(_as_coordinate(v) for v in value)
  return value


def _same_coordinate(a, b) -> bool:
  if a == b:
    return True
  numbers = (int, float)
  if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
  return False


def _matching_dims(name: str, dims: Sequence[str]) -> list[str]:
  """Returns `[name]` if it is one of `dims`, else the dims whose field path ends in it."""
  if name in dims:
    return [name]
  return [d for d in dims if d.rsplit('.', 1)[-1] == name]


def format_coordinate(value) -> str:
  """Formats a coordinate for tables and figures: floats to 4 significant digits."""
  if isinstance(value, tuple):
    return ','.join(format_coordinate(v) for v in value)
  if isinstance(value, float):
    return f'{value:.4g}'
  return str(value)


@dataclasses.dataclass(frozen=True)
class SweepRecord:
  """Test errors of a sweep with named dimensions.

  Attributes:
    dims: dimension names: the grid axes (field paths such as `finetune.n_shots`), then
      `seed`, `model`, `task` and `n`, minus any that `select` removed.
    coords: the coordinate values of each dimension.
    values: test errors, shape `[len(coords[d]) for d in dims]`; NaN where the status
      is not `ok`.
    status: `STATUS` codes over the dimensions `status_dims` (`dims` without task and n).
    nonfinite_step: the first NaN or inf training step of each model over `status_dims`;
      -1 where training stayed finite or did not run.
    scalar_coords: the selected coordinate of each dimension that `select` removed, like
      the scalar coordinates of xarray.
  """

  dims: tuple[str, ...]
  coords: dict[str, list]
  values: np.ndarray
  status: np.ndarray
  nonfinite_step: np.ndarray
  scalar_coords: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    both = [d for d in self.dims if d in self.scalar_coords]
    if both:
      raise ValueError(f'{", ".join(both)} is in both dims and scalar_coords, but a '
                       'dimension that select() removed has only a scalar coordinate.')
    shape = tuple(len(self.coords[d]) for d in self.dims)
    if self.values.shape != shape:
      raise ValueError(f'values has shape {self.values.shape}, but dims {self.dims} need '
                       f'shape {shape}.')
    status_shape = tuple(len(self.coords[d]) for d in self.status_dims)
    for name in ('status', 'nonfinite_step'):
      if getattr(self, name).shape != status_shape:
        raise ValueError(f'{name} has shape {getattr(self, name).shape}, but dims '
                         f'{self.status_dims} need shape {status_shape}.')

  @property
  def status_dims(self) -> tuple[str, ...]:
    return tuple(d for d in self.dims if d not in (TASK, N))

  @property
  def grid_dims(self) -> tuple[str, ...]:
    return tuple(d for d in self.dims if d not in (SEED, MODEL, TASK, N))

  def dim_name(self, name: str) -> str:
    """Resolves a dimension name, or the unique last part of a field path (`n_shots`)."""
    matches = _matching_dims(name, self.dims)
    if len(matches) == 1:
      return matches[0]
    if matches:
      raise ValueError(f'{name!r} matches the dimensions {", ".join(matches)}; pass the full '
                       'name in a dict, e.g. record.select({"finetune.n_shots": 10}).')
    removed = _matching_dims(name, tuple(self.scalar_coords))
    if removed:
      dim = removed[0]
      value = self.scalar_coords[dim]
      raise ValueError(f'{name!r} is not a dimension, because select() removed it '
                       f'({dim}={value!r}). Select a list, such as {dim}=[{value!r}], to '
                       'keep the dimension.')
    raise ValueError(f'{name!r} is not a dimension; valid dimensions are '
                     f'{", ".join(self.dims)}.')

  def _index(self, dim: str, value) -> int:
    """Finds a coordinate equal to `value`, or else the one float coordinate that
    `format_coordinate` displays as `value` (0.3162 for 0.31622776601683794)."""
    coords = self.coords[dim]
    for i, coordinate in enumerate(coords):
      if _same_coordinate(coordinate, value):
        return i
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
      displayed = [i for i, c in enumerate(coords)
                   if isinstance(c, float) and float(format_coordinate(c)) == value]
      if len(displayed) == 1:
        return displayed[0]
      if displayed:
        matches = ', '.join(repr(coords[i]) for i in displayed)
        raise ValueError(f'{dim}={value!r} is ambiguous: the coordinates {matches} are all '
                         f'displayed as {format_coordinate(coords[displayed[0]])}. Pass one '
                         'of them in full.')
    valid = ', '.join(repr(c) for c in coords)
    raise ValueError(f'{dim}={value!r} is not a coordinate; valid values are {valid}.')

  def select(self, selection: dict[str, Any] | None = None, **coords) -> 'SweepRecord':
    """Selects coordinates by value, like xarray's `sel`.

    A single value drops its dimension, and a list keeps it with the listed coordinates.
    A list that is itself a coordinate (a tuple-valued axis such as `finetune.losses`) is
    read as a single value. Names are dimensions or unique last parts of field paths, so
    `select(n_shots=10)` works for `finetune.n_shots`. A float may also be given as tables
    display it, `noise_std=0.3162` for 0.31622776601683794, if no other coordinate is
    displayed the same way.
    """
    selection = {**(selection or {}), **coords}
    dims, coord_values = list(self.dims), dict(self.coords)
    values, status, nonfinite = self.values, self.status, self.nonfinite_step
    scalar_coords = dict(self.scalar_coords)
    for name, value in selection.items():
      dim = self.dim_name(name)
      if dim not in dims:
        raise ValueError(f'{dim} was selected twice; select each dimension once.')
      as_coordinate = _as_coordinate(value)
      is_single = (not isinstance(value, list)
                   or any(_same_coordinate(c, as_coordinate) for c in coord_values[dim]))
      record = SweepRecord(tuple(dims), coord_values, values, status, nonfinite)
      if is_single:
        indices = record._index(dim, as_coordinate)
      else:
        indices = [record._index(dim, v) for v in value]
      values = np.take(values, indices, axis=dims.index(dim))
      if dim in record.status_dims:
        axis = record.status_dims.index(dim)
        status = np.take(status, indices, axis=axis)
        nonfinite = np.take(nonfinite, indices, axis=axis)
      if is_single:
        dims.remove(dim)
        scalar_coords[dim] = coord_values.pop(dim)[indices]
      else:
        coord_values[dim] = [coord_values[dim][i] for i in indices]
    return SweepRecord(tuple(dims), coord_values, values, status, nonfinite, scalar_coords)

  def _restore_dims(self, names: Sequence[str]) -> 'SweepRecord':
    """Puts back each of `names` (of seed, model, task and n) that `select` removed, as a
    dimension of length 1, so that code written for every dimension runs on a selection."""
    record = self
    for name in names:
      if name in record.dims:
        continue
      if name not in record.scalar_coords:
        raise ValueError(f'The record has no dimension {name} and no scalar coordinate '
                         f'{name}. Its dimensions are {", ".join(record.dims)}.')
      rank = TRAILING_DIMS.index(name)
      position = sum(d not in TRAILING_DIMS or TRAILING_DIMS.index(d) < rank
                     for d in record.dims)
      dims = list(record.dims)
      dims.insert(position, name)
      scalar_coords = dict(record.scalar_coords)
      coords = {**record.coords, name: [scalar_coords.pop(name)]}
      status, nonfinite = record.status, record.nonfinite_step
      if name not in (TASK, N):
        status_position = sum(d in dims[:position] for d in record.status_dims)
        status = np.expand_dims(status, status_position)
        nonfinite = np.expand_dims(nonfinite, status_position)
      record = SweepRecord(tuple(dims), coords, np.expand_dims(record.values, position),
                           status, nonfinite, scalar_coords)
    return record

  def valid_mask(self) -> np.ndarray:
    """Returns `status == ok` broadcast to the shape of `values`."""
    mask = self.status == STATUS['ok']
    for axis, dim in enumerate(self.dims):
      if dim in (TASK, N):
        mask = np.expand_dims(mask, axis)
    return np.broadcast_to(mask, self.values.shape)

  def mean_over_seeds(self, confidence: float = 0.95) -> 'SeedSummary':
    """Averages the seeds with status `ok`; see the module docstring for the interval."""
    if SEED not in self.dims:
      raise ValueError('mean_over_seeds needs the seed dimension, which select() removed; '
                       'select a list of seeds to keep it.')
    if not 0 < confidence < 1:
      raise ValueError(f'confidence={confidence} is invalid: expected a number in (0, 1).')
    axis = self.dims.index(SEED)
    valid = self.valid_mask()
    num_used = valid.sum(axis=axis)
    with np.errstate(invalid='ignore', divide='ignore'):
      total = np.where(valid, self.values, 0.0).sum(axis=axis)
      mean = np.where(num_used > 0, total / num_used, np.nan)
      deviations = np.where(valid, self.values - np.expand_dims(mean, axis), 0.0)
      variance = np.square(deviations).sum(axis=axis) / (num_used - 1)
      quantile = stats.t.ppf((1 + confidence) / 2, np.maximum(num_used - 1, 1))
      half_width = np.where(num_used >= 2, quantile * np.sqrt(variance / num_used), np.nan)
    dims = tuple(d for d in self.dims if d != SEED)
    return SeedSummary(dims=dims, coords={d: self.coords[d] for d in dims}, mean=mean,
                       half_width=half_width, num_used=num_used,
                       num_seeds=len(self.coords[SEED]), confidence=confidence)

  def excluded_seeds(self) -> list[dict]:
    """Lists every (grid point, model, seed) with status diverged, pretrain_diverged or
    nonfinite_eval, with its first non-finite training step."""
    excluded = []
    codes = {STATUS[name] for name in ('diverged', 'pretrain_diverged', 'nonfinite_eval')}
    for index in zip(*np.nonzero(np.isin(self.status, list(codes)))):
      entry = {dim: self.coords[dim][i] for dim, i in zip(self.status_dims, index)}
      entry['status'] = STATUS_NAMES[self.status[index]]
      entry['step'] = int(self.nonfinite_step[index])
      excluded.append(entry)
    return excluded


@dataclasses.dataclass(frozen=True)
class SeedSummary:
  """Seed means of a `SweepRecord`: the mean, the confidence interval and the seeds used.

  `mean`, `half_width` and `num_used` have the shape of `dims`. The interval is
  `mean +/- half_width`, and `half_width` is NaN where fewer than 2 seeds were used.
  """

  dims: tuple[str, ...]
  coords: dict[str, list]
  mean: np.ndarray
  half_width: np.ndarray
  num_used: np.ndarray
  num_seeds: int
  confidence: float

  @property
  def lower(self) -> np.ndarray:
    return self.mean - self.half_width

  @property
  def upper(self) -> np.ndarray:
    return self.mean + self.half_width


# ---------------------------------------------------------------------------
# Loading a sweep's chunks.


def load(workdir: str) -> SweepRecord:
  """Reads `sweep.json` and every finished chunk of a sweep into one `SweepRecord`.

  Chunks that have not finished leave their seeds with status `missing`, so a running or
  interrupted sweep can be summarized.
  """
  path = os.path.join(workdir, 'sweep.json')
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found; pass the workdir of a sweep that '
                            '`python -m lafit.sweep` started.')
  description = io.read_json(path)
  axes = description['axes']
  seeds = description['seeds']
  models = description['models']
  tasks = description['tasks']
  dims = (*(axis['field'] for axis in axes), SEED, MODEL, TASK, N)
  coords = {axis['field']: [_as_coordinate(v) for v in axis['values']] for axis in axes}
  coords.update({SEED: list(seeds), MODEL: list(models), TASK: list(tasks),
                 N: list(range(description['n_max'] + 1))})

  grid_shape = tuple(len(axis['values']) for axis in axes)
  shape = (*grid_shape, len(seeds), len(models), len(tasks), description['n_max'] + 1)
  values = np.full(shape, np.nan)
  status = np.full(shape[:-2], STATUS['missing'], np.int8)
  nonfinite = np.full(shape[:-2], -1, np.int32)
  seed_position = {seed: i for i, seed in enumerate(seeds)}
  model_position = {model: i for i, model in enumerate(models)}

  num_missing = 0
  for point in description['points']:
    grid_index = tuple(point['axis_indices'])
    point_values, point_status, point_nonfinite = (
        values[grid_index], status[grid_index], nonfinite[grid_index])
    for model in models:
      if model not in point['models']:
        point_status[:, model_position[model]] = STATUS['absent']
    for chunk_name in point['chunks']:
      path = os.path.join(workdir, 'chunks', f'{chunk_name}.npz')
      if not os.path.exists(path):
        num_missing += 1
        continue
      arrays = io.read_npz(path)
      meta = json.loads(str(arrays['meta']))
      if meta['tasks'] != tasks:
        raise ValueError(f'{path} has tasks {meta["tasks"]}, but sweep.json lists {tasks}; '
                         'the chunk is from another sweep.')
      rows = np.asarray([seed_position[seed] for seed in meta['seeds']])
      for m, model in enumerate(meta['models']):
        column = model_position[model]
        point_values[rows, column] = arrays['test_error'][m]
        point_status[rows, column] = arrays['status'][m]
        point_nonfinite[rows, column] = arrays['nonfinite_step'][m]

  if num_missing:
    total = sum(len(point['chunks']) for point in description['points'])
    logging.warning('%d of %d chunks in %s have not finished; their seeds have status '
                    'missing.', num_missing, total, workdir)
  return SweepRecord(dims=dims, coords=coords, values=values, status=status,
                     nonfinite_step=nonfinite)


# ---------------------------------------------------------------------------
# Figures and the summary table.


# Config sections whose fields share names: `pretrain.learning_rate` and
# `finetune.learning_rate`, and the sweep's grid key `learning_rate` that sets both.
TRAINING_PHASES = ('pretrain', 'finetune')


def short_names(dims: Sequence[str]) -> dict[str, str]:
  """Maps each grid dimension to its label in tables and figures.

  The label is the last part of the field path (`eval.num_prompts` gives `num_prompts`).
  A dimension keeps its full path where the last part alone would mislead:

  - where another dimension has the same last part,
  - for the fields of a training phase (`finetune.n_shots`, `finetune.learning_rate`),
  - where the last part starts with `n_`, which reads like the evaluation shot count `n`.
  """
  last_parts = [d.rsplit('.', 1)[-1] for d in dims]
  labels = {}
  for dim, part in zip(dims, last_parts):
    is_unique = last_parts.count(part) == 1
    in_phase = dim.split('.', 1)[0] in TRAINING_PHASES
    labels[dim] = part if is_unique and not in_phase and not part.startswith('n_') else dim
  return labels


def _labels(record: SweepRecord) -> dict[str, str]:
  """Labels of all dimensions in tables and figures, those that select() removed included."""
  grid = [d for d in (*record.dims, *record.scalar_coords) if d not in TRAILING_DIMS]
  return {**{d: d for d in TRAILING_DIMS}, **short_names(grid)}


def _describe_selection(record: SweepRecord) -> str:
  """Lists the coordinates that select() fixed, grid axes first: `noise_std=0.5, n=20`."""
  labels = _labels(record)
  order = [d for d in record.scalar_coords if d not in TRAILING_DIMS]
  order += [d for d in TRAILING_DIMS if d in record.scalar_coords]
  return ', '.join(f'{labels[d]}={format_coordinate(record.scalar_coords[d])}' for d in order)


def _check_has_seeds(record: SweepRecord, function: str) -> None:
  if SEED not in record.dims:
    seed = record.scalar_coords.get(SEED)
    raise ValueError(f'{function} needs the seed dimension, which select() removed '
                     f'(seed={seed!r}). Select a list of seeds, such as seed=[{seed!r}], to '
                     'keep it.')


def _grid_combinations(record: SweepRecord, exclude: Sequence[str]) -> list[dict[str, Any]]:
  other = [d for d in record.grid_dims if d not in exclude]
  return [dict(zip(other, values))
          for values in itertools.product(*(record.coords[d] for d in other))]


def _no_seeds_text(status: np.ndarray) -> str:
  """Explains a panel without seeds from the statuses of its (grid point, seed) entries."""
  counts = collections.Counter(STATUS_NAMES[code] for code in status.ravel())
  counts.pop('absent', None)
  if not counts:
    return 'model not trained at these grid points'
  if set(counts) == {'missing'}:
    return 'no finished seeds'
  return 'no seeds used: ' + ', '.join(f'{counts[name]} {name}' for name in STATUS_NAMES
                                       if name in counts)


def plot_by_axis(record: SweepRecord, axis: str, model: str, confidence: float = 0.95):
  """Plots test error against n for each value of one grid axis, with confidence bands.

  Columns are the tasks. Rows are the combinations of the other grid axes, so select
  them first (`record.select(...)`) for a single row. A row without a seed of status ok
  shows why in place of curves, such as "no finished seeds". A model, task or n that
  select() removed counts as one coordinate, and the figure's title lists what select()
  fixed. Returns the matplotlib figure.

  Raises:
    ValueError: if `axis` is not a grid axis of `record`, or select() removed it or the
      seed dimension.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  _check_has_seeds(record, 'plot_by_axis')
  axis = record.dim_name(axis)
  if axis not in record.grid_dims:
    raise ValueError(f'axis={axis!r} is not a grid axis; valid axes are '
                     f'{", ".join(record.grid_dims)}.')
  selection_text = _describe_selection(record)
  labels = _labels(record)
  by_model = record._restore_dims((MODEL, TASK, N)).select(model=model)
  rows = _grid_combinations(by_model, exclude=(axis,))
  tasks = by_model.coords[TASK]
  n_shots = np.asarray(by_model.coords[N])
  cmap = plt.get_cmap('viridis')
  axis_values = by_model.coords[axis]

  # dpi=120 is the resolution of io.save_figure, so savefig reuses the text sizes that
  # tight_layout measured, which matplotlib caches per dpi.
  fig, panels = plt.subplots(len(rows), len(tasks), figsize=(4.5 * len(tasks), 3.5 * len(rows)),
                             squeeze=False, dpi=120)
  for row, fixed in enumerate(rows):
    row_record = by_model.select(fixed)
    summary = row_record.mean_over_seeds(confidence)
    has_seeds = np.any(row_record.status == STATUS['ok'])
    for column, task in enumerate(tasks):
      panel = panels[row][column]
      if has_seeds:
        for i, value in enumerate(axis_values):
          selected = {axis: i, TASK: column}
          index = tuple(selected.get(d, slice(None)) for d in summary.dims)
          mean, lower, upper = summary.mean[index], summary.lower[index], summary.upper[index]
          used = int(summary.num_used[index].min())
          color = cmap(i / max(len(axis_values) - 1, 1))
          label = f'{labels[axis]}={format_coordinate(value)} ({used}/{summary.num_seeds})'
          panel.plot(n_shots, mean, '-o', color=color, markersize=2.5, label=label)
          panel.fill_between(n_shots, lower, upper, color=color, alpha=0.2, linewidth=0)
        if np.any(np.isfinite(summary.mean) & (summary.mean > 0)):
          panel.set_yscale('log')
        panel.legend(fontsize=7)
      else:
        # Without a seed to plot, the y-axis would only show matplotlib's default range.
        panel.text(0.5, 0.5, _no_seeds_text(row_record.status), transform=panel.transAxes,
                   ha='center', va='center', fontsize=9)
        panel.set_xlim(n_shots[0] - 0.5, n_shots[-1] + 0.5)
        panel.set_yticks([])
      panel.set_xlabel('shots n')
      panel.set_ylabel('test error')
      fixed_text = ', '.join(f'{labels[d]}={format_coordinate(v)}'
                             for d, v in fixed.items())
      panel.set_title(f'{model}, {task}' + (f'\n{fixed_text}' if fixed_text else ''), fontsize=9)
  title = f'mean over seeds (seeds used), band: {confidence:.0%} Student t interval'
  if selection_text:
    title += f'\nselected: {selection_text}'
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  # tight_layout leaves a placeholder layout engine, with which savefig draws the figure once
  # more before the drawing that it saves. The margins are final, so drop the engine.
  fig.set_layout_engine(None)
  return fig


def write_axis_figures(directory: str, record: SweepRecord, axis: str,
                       confidence: float = 0.95) -> list[str]:
  """Writes `plot_by_axis` for every model to `directory/<axis>/<model>.png`; returns paths."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  axis = record.dim_name(axis)
  paths = []
  for model in record._restore_dims((MODEL,)).coords[MODEL]:
    figure = plot_by_axis(record, axis, model, confidence)
    path = os.path.join(directory, axis, f'{model}.png')
    # plot_by_axis has fitted the margins, and cropping would draw the figure once more.
    io.save_figure(path, figure, tight=False)
    plt.close(figure)
    paths.append(path)
  return paths


def _format_interval(mean: float, half_width: float) -> str:
  if not math.isfinite(mean):
    return 'no seeds'
  if not math.isfinite(half_width):
    return f'{mean:.4g}'
  return f'{mean:.4g} ± {half_width:.2g}'


def summary_table(record: SweepRecord, n_values: Sequence[int] | None = None,
                  confidence: float = 0.95) -> str:
  """Formats seed means and confidence intervals as Markdown.

  One row per grid point and model, one column per task and `n` in `n_values` (default:
  the first, middle and last n, so 0, n_max // 2 and n_max). A second table lists the
  seeds excluded from the means. A model, task or n that select() removed counts as one
  coordinate, and a line above the table lists what select() fixed.

  Raises:
    ValueError: for an `n` that is not a coordinate, or if select() removed the seed
      dimension.
  """
  _check_has_seeds(record, 'summary_table')
  selection_text = _describe_selection(record)
  labels = _labels(record)
  record = record._restore_dims((MODEL, TASK, N))
  shots = record.coords[N]
  if n_values is None:
    n_values = sorted({shots[0], shots[(len(shots) - 1) // 2], shots[-1]})
  for n in n_values:
    if n not in shots:
      if shots == list(range(shots[-1] + 1)):
        raise ValueError(f'n={n} is invalid: expected an integer in 0..{shots[-1]}.')
      raise ValueError(f'n={n} is invalid: expected one of {", ".join(map(str, shots))}, '
                       'the n that select() kept.')
  summary = record.mean_over_seeds(confidence)
  grid_dims = record.grid_dims
  tasks = record.coords[TASK]

  lines = [
      f'Mean test error over seeds ± half-width of the {confidence:.0%} Student t confidence '
      f'interval. "seeds" is the number of seeds used out of {summary.num_seeds}. Seeds '
      'that diverged or have not finished are excluded.',
      '',
  ]
  if selection_text:
    lines += [f'Selected: {selection_text}.', '']
  header = [labels[d] for d in grid_dims] + ['model', 'seeds']
  header += [f'{task} n={n}' for task in tasks for n in n_values]
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|' + '---|' * (len(grid_dims) + 2) + '---:|' * (len(tasks) * len(n_values)))
  for fixed in _grid_combinations(record, exclude=()):
    grid_index = tuple(record.coords[d].index(fixed[d]) for d in grid_dims)
    for m, model in enumerate(record.coords[MODEL]):
      used = summary.num_used[grid_index + (m, 0, 0)]
      status = record.status[grid_index][:, m]
      if np.all(status == STATUS['absent']):
        continue
      cells = [format_coordinate(fixed[d]) for d in grid_dims]
      cells += [model, f'{used}/{summary.num_seeds}']
      for k in range(len(tasks)):
        for n in n_values:
          index = grid_index + (m, k, shots.index(n))
          cells.append(_format_interval(summary.mean[index], summary.half_width[index]))
      lines.append('| ' + ' | '.join(cells) + ' |')

  excluded = record.excluded_seeds()
  lines += ['', f'Seeds excluded from the means: {len(excluded)}.']
  if excluded:
    lines += ['', '| ' + ' | '.join(header[:len(grid_dims) + 1]) + ' | seed | status | step |',
              '|' + '---|' * (len(grid_dims) + 4)]
    for entry in excluded:
      cells = [format_coordinate(entry[d]) for d in grid_dims]
      cells += [entry[MODEL], str(entry[SEED]), entry['status'],
                str(entry['step']) if entry['step'] >= 0 else '-']
      lines.append('| ' + ' | '.join(cells) + ' |')
  num_missing = int(np.sum(record.status == STATUS['missing']))
  if num_missing:
    lines += ['', f'Not finished: {num_missing} (grid point, seed, model) entries.']
  return '\n'.join(lines) + '\n'


def write_report(workdir: str, *, plots: bool = True, axes: Sequence[str] | None = None,
                 n_values: Sequence[int] | None = None,
                 confidence: float = 0.95) -> SweepRecord:
  """Writes `summary.md` and, with `plots`, `figures/<axis>/<model>.png` for each grid axis
  with two or more values (or for `axes`). Returns the loaded record."""
  record = load(workdir)
  io.write_text(os.path.join(workdir, 'summary.md'),
                summary_table(record, n_values=n_values, confidence=confidence))
  if plots:
    if axes is None:
      axes = [d for d in record.grid_dims if len(record.coords[d]) > 1]
    directory = os.path.join(workdir, 'figures')
    num_figures = len(axes) * len(record._restore_dims((MODEL,)).coords[MODEL])
    logging.info('Writing %d figures, one per grid axis and model, to %s.', num_figures,
                 directory)
    start_time = time.perf_counter()
    for axis in axes:
      write_axis_figures(directory, record, axis, confidence)
    logging.info('Wrote %d figures in %.1f s.', num_figures, time.perf_counter() - start_time)
  logging.info('Wrote the summary of %s.', workdir)
  return record


# ---------------------------------------------------------------------------
# Command line.


def define_flags() -> None:
  """Defines the command-line flags; only the command line calls it."""
  flags.DEFINE_string('workdir', None, 'Workdir of a sweep (it contains sweep.json).')
  flags.DEFINE_list('n', None, 'Shot counts n of the table columns; default 0, n_max // 2, '
                    'n_max.')
  flags.DEFINE_list('axis', None, 'Grid axes to plot; default every axis with two or more '
                    'values.')
  flags.DEFINE_float('confidence', 0.95, 'Confidence level of the intervals, in (0, 1).')
  flags.DEFINE_bool('plots', True, 'Whether to write figures.')
  flags.mark_flags_as_required(['workdir'])


def _read_description(workdir: str) -> dict:
  """Reads `sweep.json` of `workdir`, for the checks of the command-line flags."""
  cli.check_workdir(workdir)
  if not os.path.isdir(workdir):
    raise ValueError(f'--workdir={workdir} is invalid: the directory does not exist. Pass '
                     'the workdir of a sweep that `python -m lafit.sweep` started.')
  path = os.path.join(workdir, 'sweep.json')
  if not os.path.exists(path):
    raise ValueError(f'--workdir={workdir} is invalid: {path} not found. Pass the workdir '
                     'of a sweep that `python -m lafit.sweep` started.')
  try:
    description = io.read_json(path)
  except ValueError as error:
    raise ValueError(f'--workdir={workdir} is invalid: {path} is not valid JSON '
                     f'({error}).') from error
  missing = [key for key in ('axes', 'n_max') if key not in description]
  if missing:
    raise ValueError(f'--workdir={workdir} is invalid: {path} has no {", ".join(missing)}, '
                     'so `python -m lafit.sweep` did not write it.')
  return description


def _parse_n(n: Sequence[str], n_max: int) -> list[int]:
  flag = f'--n={",".join(n)}'
  if not n:
    raise ValueError(f'{flag} is invalid: expected one or more integers in 0..{n_max}.')
  n_values = []
  for text in n:
    try:
      value = int(text)
    except ValueError:
      raise ValueError(f'{flag} is invalid: {text!r} is not an integer. Expected integers '
                       f'in 0..{n_max}, such as --n=0,{n_max}.') from None
    if not 0 <= value <= n_max:
      raise ValueError(f'{flag} is invalid: {value} is outside 0..{n_max}, the shot counts '
                       'of this sweep.')
    n_values.append(value)
  return n_values


def _parse_axes(axis: Sequence[str], grid_axes: Sequence[str]) -> list[str]:
  axes = []
  for name in axis:
    matches = _matching_dims(name, grid_axes)
    if len(matches) > 1:
      raise ValueError(f'--axis={name} is invalid: it matches the grid axes '
                       f'{", ".join(matches)}. Pass the full name.')
    if not grid_axes:
      raise ValueError(f'--axis={name} is invalid: the sweep has no grid axes to plot.')
    if not matches:
      raise ValueError(f'--axis={name} is invalid: expected a grid axis of the sweep. Valid '
                       f'axes are {", ".join(grid_axes)}.')
    axes.append(matches[0])
  return axes


def check_flags(workdir: str, n: Sequence[str] | None, axis: Sequence[str] | None,
                confidence: float) -> tuple[list[int] | None, list[str] | None]:
  """Checks the command-line values against the sweep's `sweep.json`, before any chunk is
  read or figure drawn.

  Returns:
    The shot counts `n` as integers and the grid axes `axis` as full field paths, each
    None where the flag is unset.

  Raises:
    ValueError: naming the flag, its value and the valid values.
  """
  if not 0 < confidence < 1:
    raise ValueError(f'--confidence={confidence} is invalid: expected a number in (0, 1), '
                     'such as 0.95.')
  description = _read_description(workdir)
  n_values = None if n is None else _parse_n(n, description['n_max'])
  grid_axes = [entry['field'] for entry in description['axes']]
  axes = None if axis is None else _parse_axes(axis, grid_axes)
  return n_values, axes


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  cli.log_progress()
  options = flags.FLAGS
  try:
    n_values, axes = check_flags(options.workdir, options.n, options.axis, options.confidence)
  except ValueError as error:
    cli.fail(str(error))
  write_report(options.workdir, plots=options.plots, axes=axes, n_values=n_values,
               confidence=options.confidence)
  print(open(os.path.join(options.workdir, 'summary.md'), encoding='utf-8').read())


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=cli.parse_flags)

"""Aggregation of sweep results, on a synthetic sweep written by hand (no training)."""

import json
import logging
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from lafit import aggregate
from lafit import io

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OK, DIVERGED = aggregate.STATUS['ok'], aggregate.STATUS['diverged']

# Student t quantiles t_{0.975, df}, from a printed table.
T_975 = {1: 12.706204736174705, 2: 4.302652729749464, 3: 3.182446305284263,
         4: 2.7764451051977987, 5: 2.5705818356363146}

NOISE_STDS = [0.1, 0.5]
SEEDS = [10, 11, 12, 13, 14, 15]
MODELS = ['pretrained', 'zs_v']
TASKS = ['theta0', 'sphere']
N_MAX = 3


def write_synthetic_sweep(workdir, rng, *, skip_chunk=None):
  """Writes a sweep over noise_std with 2 chunks of 3 seeds per grid point.

  Grid point 1 has no `zs_v` model. Seed 12 of `zs_v` at grid point 0 diverged at step 7.
  Returns the test errors as written, shape (grid, seed, model, task, n), NaN where absent.
  """
  values = rng.uniform(0.5, 2.0, (2, len(SEEDS), 2, len(TASKS), N_MAX + 1))
  values[1, :, 1] = np.nan
  points = []
  for g, noise_std in enumerate(NOISE_STDS):
    models = MODELS if g == 0 else MODELS[:1]
    chunks = []
    for block in (SEEDS[:3], SEEDS[3:]):
      name = f'g{g:04d}_s{block[0]:04d}-{block[-1]:04d}'
      chunks.append(name)
      rows = [SEEDS.index(s) for s in block]
      test_error = values[g][rows][:, :len(models)].transpose(1, 0, 2, 3).copy()
      status = np.full((len(models), 3), OK, np.int8)
      nonfinite = np.full((len(models), 3), -1, np.int32)
      if g == 0 and 12 in block:
        status[1, block.index(12)] = DIVERGED
        nonfinite[1, block.index(12)] = 7
        test_error[1, block.index(12)] = np.nan
      meta = {'chunk': name, 'models': models, 'tasks': TASKS, 'seeds': block}
      if name != skip_chunk:
        io.write_npz(os.path.join(workdir, 'chunks', f'{name}.npz'), {
            'test_error': test_error, 'status': status, 'nonfinite_step': nonfinite,
            'meta': np.asarray(json.dumps(meta))})
    points.append({'index': g, 'axis_indices': [g], 'values': {'noise_std': noise_std},
                   'models': models, 'chunks': chunks})
  io.write_json(os.path.join(workdir, 'sweep.json'), {
      'config': {}, 'axes': [{'field': 'noise_std', 'values': NOISE_STDS}], 'seeds': SEEDS,
      'models': MODELS, 'tasks': TASKS, 'n_max': N_MAX, 'points': points})
  values[0, SEEDS.index(12), 1] = np.nan
  return values


@pytest.fixture
def synthetic(tmp_path):
  values = write_synthetic_sweep(str(tmp_path), np.random.default_rng(0))
  return str(tmp_path), values


def test_load_shapes_and_statuses(synthetic):
  workdir, values = synthetic
  record = aggregate.load(workdir)
  assert record.dims == ('noise_std', 'seed', 'model', 'task', 'n')
  assert record.coords['noise_std'] == NOISE_STDS
  assert record.coords['seed'] == SEEDS
  assert record.coords['model'] == MODELS
  assert record.coords['n'] == [0, 1, 2, 3]
  np.testing.assert_array_equal(record.values, values)
  assert record.status.shape == (2, 6, 2)
  assert record.status[0, 2, 1] == DIVERGED
  assert record.nonfinite_step[0, 2, 1] == 7
  assert np.all(record.status[1, :, 1] == aggregate.STATUS['absent'])
  assert np.sum(record.status == OK) == 2 * 6 + 5


def test_unfinished_chunk_marked_missing(tmp_path):
  write_synthetic_sweep(str(tmp_path), np.random.default_rng(1),
                        skip_chunk='g0000_s0013-0015')
  record = aggregate.load(str(tmp_path))
  assert np.all(record.status[0, 3:] == aggregate.STATUS['missing'])
  assert np.all(np.isnan(record.values[0, 3:]))
  summary = record.mean_over_seeds()
  assert summary.num_used[0, 0, 0, 0] == 3  # pretrained, seeds 10-12.
  assert summary.num_used[0, 1, 0, 0] == 2  # zs_v, seeds 10 and 11; 12 diverged.


def test_mean_and_interval_match_numpy(synthetic):
  workdir, values = synthetic
  summary = aggregate.load(workdir).mean_over_seeds(confidence=0.95)
  assert summary.dims == ('noise_std', 'model', 'task', 'n')
  assert summary.num_seeds == 6

  # pretrained at noise_std 0.1: all 6 seeds.
  seeds = values[0, :, 0]
  expected_half = T_975[5] * seeds.std(axis=0, ddof=1) / np.sqrt(6)
  np.testing.assert_allclose(summary.mean[0, 0], seeds.mean(axis=0), rtol=1e-12)
  np.testing.assert_allclose(summary.half_width[0, 0], expected_half, rtol=1e-9)
  np.testing.assert_allclose(summary.lower[0, 0], seeds.mean(axis=0) - expected_half,
                             rtol=1e-9)
  assert np.all(summary.num_used[0, 0] == 6)

  # zs_v at noise_std 0.1: seed 12 diverged, so 5 seeds.
  kept = np.delete(values[0, :, 1], SEEDS.index(12), axis=0)
  expected_half = T_975[4] * kept.std(axis=0, ddof=1) / np.sqrt(5)
  np.testing.assert_allclose(summary.mean[0, 1], kept.mean(axis=0), rtol=1e-12)
  np.testing.assert_allclose(summary.half_width[0, 1], expected_half, rtol=1e-9)
  assert np.all(summary.num_used[0, 1] == 5)

  # zs_v does not exist at noise_std 0.5.
  assert np.all(summary.num_used[1, 1] == 0)
  assert np.all(np.isnan(summary.mean[1, 1]))


def test_interval_needs_two_seeds(synthetic):
  workdir, values = synthetic
  record = aggregate.load(workdir).select(seed=[10, 12])
  summary = record.mean_over_seeds()
  # zs_v at noise_std 0.1 keeps only seed 10: a mean but no interval.
  np.testing.assert_allclose(summary.mean[0, 1], values[0, 0, 1])
  assert np.all(np.isnan(summary.half_width[0, 1]))
  np.testing.assert_allclose(
      summary.half_width[0, 0],
      T_975[1] * values[0, [0, 2], 0].std(axis=0, ddof=1) / np.sqrt(2), rtol=1e-9)


def test_select_by_value(synthetic):
  workdir, values = synthetic
  record = aggregate.load(workdir)

  single = record.select(noise_std=0.5, model='pretrained', task='sphere')
  assert single.dims == ('seed', 'n')
  np.testing.assert_array_equal(single.values, values[1, :, 0, 1])
  assert single.status.shape == (6,)

  kept = record.select({'seed': [13, 10]}, n=[0, 3])
  assert kept.dims == record.dims
  assert kept.coords['seed'] == [13, 10]
  assert kept.coords['n'] == [0, 3]
  np.testing.assert_array_equal(kept.values, values[:, [3, 0]][..., [0, 3]])
  np.testing.assert_array_equal(kept.status, record.status[:, [3, 0]])

  close = record.select(noise_std=0.1 + 1e-12)
  assert 'noise_std' not in close.dims


@pytest.mark.parametrize('selection,message', [
    ({'noise_std': 0.3}, 'noise_std=0.3 is not a coordinate; valid values are 0.1, 0.5'),
    ({'model': 'zs_kq'}, "model='zs_kq' is not a coordinate"),
    ({'width': 1}, "'width' is not a dimension; valid dimensions are noise_std, seed"),
])
def test_select_rejects_unknown(synthetic, selection, message):
  record = aggregate.load(synthetic[0])
  with pytest.raises(ValueError, match=message):
    record.select(selection)


def make_record(grid, rng=None, *, seeds=(0, 1), models=('m',), tasks=('t',), n_max=0):
  """Builds a record with random values and status ok over `grid`, a dict of axis values."""
  coords = {**{field: list(values) for field, values in grid.items()}, 'seed': list(seeds),
            'model': list(models), 'task': list(tasks), 'n': list(range(n_max + 1))}
  shape = tuple(len(values) for values in coords.values())
  rng = rng or np.random.default_rng(0)
  return aggregate.SweepRecord(
      dims=tuple(coords), coords=coords, values=rng.uniform(0.5, 2.0, shape),
      status=np.full(shape[:-2], OK, np.int8), nonfinite_step=np.full(shape[:-2], -1, np.int32))


def test_select_float_exact_or_displayed():
  record = make_record({'noise_std': [0.1 ** 0.5, 0.5]})
  expected = record.values[0]
  np.testing.assert_array_equal(record.select(noise_std=0.1 ** 0.5).values, expected)
  np.testing.assert_array_equal(record.select(noise_std=0.3162).values, expected)
  np.testing.assert_array_equal(record.select(noise_std=[0.5, 0.3162]).values,
                                record.values[[1, 0]])


def test_select_float_ambiguous():
  record = make_record({'noise_std': [0.31622, 0.31623, 0.5]})
  with pytest.raises(ValueError, match='noise_std=0.3162 is ambiguous: the coordinates '
                     '0.31622, 0.31623 are all displayed as 0.3162'):
    record.select(noise_std=0.3162)
  np.testing.assert_array_equal(record.select(noise_std=0.31623).values, record.values[1])


@pytest.mark.parametrize('value', [0.3, 0.31623, 0.316])
def test_select_float_no_match(value):
  record = make_record({'noise_std': [0.1 ** 0.5, 0.5]})
  with pytest.raises(ValueError, match=f'noise_std={value} is not a coordinate; valid values '
                     'are 0.31622776601683794, 0.5.'):
    record.select(noise_std=value)


def test_select_ambiguous_short_name():
  coords = {'pretrain.n_shots': [5], 'finetune.n_shots': [5], 'seed': [0], 'model': ['m'],
            'task': ['t'], 'n': [0]}
  record = aggregate.SweepRecord(
      dims=tuple(coords), coords=coords, values=np.zeros((1,) * 6),
      status=np.zeros((1,) * 4, np.int8), nonfinite_step=np.zeros((1,) * 4, np.int32))
  with pytest.raises(ValueError, match='matches the dimensions pretrain.n_shots, '
                     'finetune.n_shots'):
    record.select(n_shots=5)
  assert record.select({'finetune.n_shots': 5}).dims[0] == 'pretrain.n_shots'


def test_short_names_unambiguous():
  dims = ['noise_std', 'eval.num_prompts', 'finetune.n_shots', 'finetune.learning_rate',
          'learning_rate', 'finetune.dataset_size', 'eval.n_max', 'a.x', 'b.x']
  assert aggregate.short_names(dims) == {
      'noise_std': 'noise_std',
      'eval.num_prompts': 'num_prompts',
      'finetune.n_shots': 'finetune.n_shots',
      'finetune.learning_rate': 'finetune.learning_rate',
      'learning_rate': 'learning_rate',
      'finetune.dataset_size': 'finetune.dataset_size',
      'eval.n_max': 'eval.n_max',
      'a.x': 'a.x',
      'b.x': 'b.x',
  }


def test_phase_axes_labeled_in_full():
  record = make_record({'finetune.learning_rate': [0.01], 'finetune.n_shots': [10, 20],
                        'eval.num_prompts': [100]}, n_max=1)
  table = aggregate.summary_table(record, n_values=[1])
  assert ('| finetune.learning_rate | finetune.n_shots | num_prompts | model | seeds | t n=1 |'
          in table)
  figure = aggregate.plot_by_axis(record, 'n_shots', 'm')
  labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
  assert labels == ['finetune.n_shots=10 (2/2)', 'finetune.n_shots=20 (2/2)']
  assert figure.axes[0].get_title() == 'm, t\nfinetune.learning_rate=0.01, num_prompts=100'
  # select and dim_name still take the last part where it is unique.
  selected = record.select(learning_rate=0.01, n_shots=20, num_prompts=100)
  np.testing.assert_array_equal(selected.values, record.values[0, 1, 0])
  assert 'Selected: finetune.learning_rate=0.01, finetune.n_shots=20, num_prompts=100.' in (
      aggregate.summary_table(selected))


def test_excluded_seeds_listed(synthetic):
  record = aggregate.load(synthetic[0])
  assert record.excluded_seeds() == [
      {'noise_std': 0.1, 'seed': 12, 'model': 'zs_v', 'status': 'diverged', 'step': 7}]


def test_summary_table(synthetic):
  workdir, values = synthetic
  table = aggregate.summary_table(aggregate.load(workdir), n_values=[0, 3])
  lines = table.splitlines()
  assert lines[2] == ('| noise_std | model | seeds | theta0 n=0 | theta0 n=3 | sphere n=0 '
                      '| sphere n=3 |')
  means_table = lines[:lines.index('Seeds excluded from the means: 1.')]
  rows = [line for line in means_table if line.startswith('| 0.')]
  assert len(rows) == 3  # zs_v is absent at noise_std 0.5.
  assert rows[1].startswith('| 0.1 | zs_v | 5/6 |')
  mean = np.delete(values[0, :, 1, 0, 0], 2).mean()
  assert f'{mean:.4g} ± ' in rows[1]
  assert 'Seeds excluded from the means: 1.' in table
  assert '| 0.1 | zs_v | 12 | diverged | 7 |' in table


def table_rows(table):
  """Returns the rows of the means table, header and separator excluded."""
  lines = table.splitlines()
  means = lines[:lines.index(next(l for l in lines if l.startswith('Seeds excluded')))]
  return [line for line in means if line.startswith('| ') and 'model' not in line]


def test_summary_table_selected_task(synthetic):
  workdir, values = synthetic
  table = aggregate.summary_table(aggregate.load(workdir).select(task='sphere'),
                                  n_values=[0, 3])
  assert 'Selected: task=sphere.' in table
  assert '| noise_std | model | seeds | sphere n=0 | sphere n=3 |' in table
  rows = table_rows(table)
  assert len(rows) == 3
  assert rows[1].startswith('| 0.1 | zs_v | 5/6 | ')
  mean = np.delete(values[0, :, 1, 1, 3], 2).mean()
  assert rows[1].split(' | ')[4].startswith(f'{mean:.4g} ± ')


def test_summary_table_selected_n(synthetic):
  workdir, values = synthetic
  table = aggregate.summary_table(aggregate.load(workdir).select(n=2))
  assert 'Selected: n=2.' in table
  assert '| noise_std | model | seeds | theta0 n=2 | sphere n=2 |' in table
  cells = table_rows(table)[0].split(' | ')
  assert cells[:3] == ['| 0.1', 'pretrained', '6/6']
  assert cells[3].startswith(f'{values[0, :, 0, 0, 2].mean():.4g} ± ')
  assert cells[4].startswith(f'{values[0, :, 0, 1, 2].mean():.4g} ± ')


def test_summary_table_selected_model_and_grid(synthetic):
  workdir, values = synthetic
  record = aggregate.load(workdir).select(noise_std=0.1, model='zs_v')
  table = aggregate.summary_table(record, n_values=[1])
  assert 'Selected: noise_std=0.1, model=zs_v.' in table
  assert '| model | seeds | theta0 n=1 | sphere n=1 |' in table
  rows = table_rows(table)
  assert len(rows) == 1
  mean = np.delete(values[0, :, 1, 0, 1], 2).mean()
  assert rows[0].startswith(f'| zs_v | 5/6 | {mean:.4g} ± ')
  assert '| zs_v | 12 | diverged | 7 |' in table


def test_summary_table_rejects_selected_seed(synthetic):
  record = aggregate.load(synthetic[0]).select(seed=10)
  with pytest.raises(ValueError, match=r'summary_table needs the seed dimension, which '
                     r'select\(\) removed \(seed=10\)\. Select a list of seeds'):
    aggregate.summary_table(record)


def test_summary_table_rejects_bad_n(synthetic):
  with pytest.raises(ValueError, match='n=9 is invalid: expected an integer in 0..3'):
    aggregate.summary_table(aggregate.load(synthetic[0]), n_values=[9])


def test_figures_written(synthetic):
  workdir, _ = synthetic
  paths = aggregate.write_axis_figures(os.path.join(workdir, 'figures'),
                                       aggregate.load(workdir), 'noise_std')
  assert [os.path.relpath(p, workdir) for p in paths] == [
      'figures/noise_std/pretrained.png', 'figures/noise_std/zs_v.png']
  for path in paths:
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_plot_selected_task(synthetic):
  workdir, values = synthetic
  record = aggregate.load(workdir).select(task='sphere')
  figure = aggregate.plot_by_axis(record, 'noise_std', 'zs_v')
  assert len(figure.axes) == 1
  panel = figure.axes[0]
  assert panel.get_title() == 'zs_v, sphere'
  assert 'selected: task=sphere' in figure.get_suptitle()
  mean = np.delete(values[0, :, 1, 1], 2, axis=0).mean(axis=0)
  np.testing.assert_allclose(panel.get_lines()[0].get_ydata(), mean, rtol=1e-12)
  np.testing.assert_array_equal(panel.get_lines()[0].get_xdata(), [0, 1, 2, 3])


def test_plot_selected_n_and_model(synthetic):
  workdir, values = synthetic
  record = aggregate.load(workdir).select(n=2, model='pretrained')
  figure = aggregate.plot_by_axis(record, 'noise_std', 'pretrained')
  assert [panel.get_title() for panel in figure.axes] == ['pretrained, theta0',
                                                          'pretrained, sphere']
  assert 'selected: model=pretrained, n=2' in figure.get_suptitle()
  lines = figure.axes[1].get_lines()
  np.testing.assert_array_equal(lines[1].get_xdata(), [2])
  np.testing.assert_allclose(lines[1].get_ydata(), [values[1, :, 0, 1, 2].mean()], rtol=1e-12)


def test_plot_rejects_selected_axis(synthetic):
  record = aggregate.load(synthetic[0]).select(noise_std=0.5)
  with pytest.raises(ValueError, match=r"'noise_std' is not a dimension, because select\(\) "
                     r'removed it \(noise_std=0.5\)'):
    aggregate.plot_by_axis(record, 'noise_std', 'pretrained')


def test_report_logs_figures(synthetic, caplog):
  workdir, _ = synthetic
  caplog.set_level(logging.INFO)
  aggregate.write_report(workdir)
  messages = [record.getMessage() for record in caplog.records]
  directory = os.path.join(workdir, 'figures')
  assert f'Writing 2 figures, one per grid axis and model, to {directory}.' in messages
  assert any(m.startswith('Wrote 2 figures in ') and m.endswith(' s.') for m in messages)
  assert sorted(os.listdir(os.path.join(directory, 'noise_std'))) == ['pretrained.png',
                                                                     'zs_v.png']


def test_plot_has_no_layout_engine(synthetic):
  # A layout engine would make savefig draw the figure twice.
  figure = aggregate.plot_by_axis(aggregate.load(synthetic[0]), 'noise_std', 'pretrained')
  assert figure.get_layout_engine() is None


def test_plot_rejects_non_grid_axis(synthetic):
  with pytest.raises(ValueError, match="axis='seed' is not a grid axis"):
    aggregate.plot_by_axis(aggregate.load(synthetic[0]), 'seed', 'pretrained')


def test_command_line_writes_summary(synthetic):
  workdir, _ = synthetic
  done = subprocess.run(
      [sys.executable, '-m', 'lafit.aggregate', f'--workdir={workdir}', '--n=1,2',
       '--noplots'], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert 'theta0 n=1 | theta0 n=2' in done.stdout
  assert os.path.exists(os.path.join(workdir, 'summary.md'))
  assert not os.path.exists(os.path.join(workdir, 'figures'))


@pytest.mark.parametrize('n,axis,confidence,message', [
    (None, None, 1.5, r'--confidence=1.5 is invalid: expected a number in \(0, 1\)'),
    (None, None, float('nan'), r'--confidence=nan is invalid: expected a number in \(0, 1\)'),
    (['abc'], None, 0.95, "--n=abc is invalid: 'abc' is not an integer. Expected integers in "
     '0..3'),
    (['1', '9'], None, 0.95, '--n=1,9 is invalid: 9 is outside 0..3'),
    ([], None, 0.95, '--n= is invalid: expected one or more integers in 0..3'),
    (None, ['foo'], 0.95, '--axis=foo is invalid: expected a grid axis of the sweep. Valid '
     'axes are noise_std.'),
    (None, ['seed'], 0.95, '--axis=seed is invalid: expected a grid axis'),
])
def test_check_flags_rejects_values(synthetic, n, axis, confidence, message):
  with pytest.raises(ValueError, match=message):
    aggregate.check_flags(synthetic[0], n, axis, confidence)


def test_check_flags_rejects_workdir(tmp_path):
  missing = str(tmp_path / 'missing')
  with pytest.raises(ValueError, match=f'--workdir={re.escape(missing)} is invalid: the '
                     'directory does not exist'):
    aggregate.check_flags(missing, None, None, 0.95)
  with pytest.raises(ValueError, match='--workdir is empty'):
    aggregate.check_flags('', None, None, 0.95)
  (tmp_path / 'file').write_text('')
  with pytest.raises(ValueError, match=f'--workdir={re.escape(str(tmp_path / "file"))} is a '
                     'file'):
    aggregate.check_flags(str(tmp_path / 'file'), None, None, 0.95)
  prefix = f'--workdir={re.escape(str(tmp_path))} is invalid: '
  with pytest.raises(ValueError, match=f'{prefix}.*sweep.json not found'):
    aggregate.check_flags(str(tmp_path), None, None, 0.95)
  (tmp_path / 'sweep.json').write_text('{"axes": [')
  with pytest.raises(ValueError, match=f'{prefix}.*sweep.json is not valid JSON'):
    aggregate.check_flags(str(tmp_path), None, None, 0.95)
  (tmp_path / 'sweep.json').write_text('{"axes": []}')
  with pytest.raises(ValueError, match='sweep.json has no n_max'):
    aggregate.check_flags(str(tmp_path), None, None, 0.95)


def test_check_flags_resolves_values(tmp_path):
  io.write_json(str(tmp_path / 'sweep.json'), {'n_max': 40, 'axes': [
      {'field': 'pretrain.n_shots', 'values': [10]},
      {'field': 'finetune.n_shots', 'values': [10]},
      {'field': 'eval.num_prompts', 'values': [100]}]})
  n_values, axes = aggregate.check_flags(str(tmp_path), ['0', ' 40', '7'],
                                         ['num_prompts', 'finetune.n_shots'], 0.9)
  assert n_values == [0, 40, 7]
  assert axes == ['eval.num_prompts', 'finetune.n_shots']
  assert aggregate.check_flags(str(tmp_path), None, None, 0.5) == (None, None)
  with pytest.raises(ValueError, match='--axis=n_shots is invalid: it matches the grid axes '
                     'pretrain.n_shots, finetune.n_shots. Pass the full name.'):
    aggregate.check_flags(str(tmp_path), None, ['n_shots'], 0.95)

  io.write_json(str(tmp_path / 'sweep.json'), {'n_max': 40, 'axes': []})
  with pytest.raises(ValueError, match='--axis=noise_std is invalid: the sweep has no grid '
                     'axes to plot'):
    aggregate.check_flags(str(tmp_path), None, ['noise_std'], 0.95)


def test_command_line_bad_flag(synthetic):
  workdir, _ = synthetic
  done = subprocess.run(
      [sys.executable, '-m', 'lafit.aggregate', f'--workdir={workdir}', '--n=abc'],
      cwd=REPO, capture_output=True, text=True, timeout=120)
  assert done.returncode == 1
  assert "Error: --n=abc is invalid: 'abc' is not an integer" in done.stderr
  assert 'Traceback' not in done.stderr
  assert not os.path.exists(os.path.join(workdir, 'summary.md'))


def test_plot_row_without_seeds():
  record = make_record({'noise_std': [0.1, 0.5], 'finetune.n_shots': [10, 20, 40]},
                       seeds=(0, 1, 2), tasks=('theta0', 'sphere'), n_max=2)
  values, status = record.values.copy(), record.status.copy()
  status[:, 1] = aggregate.STATUS['missing']  # n_shots 20: nothing finished.
  status[:, 2] = aggregate.STATUS['missing']  # n_shots 40: seed 0 diverged, 1 and 2 missing.
  status[0, 2, 0] = DIVERGED
  values[:, 1:] = np.nan
  record = aggregate.SweepRecord(record.dims, record.coords, values, status,
                                 record.nonfinite_step)
  figure = aggregate.plot_by_axis(record, 'noise_std', 'm')
  panels = np.asarray(figure.axes).reshape(3, 2)
  for panel in panels[0]:
    assert len(panel.get_lines()) == 2
    assert not panel.texts
  for panel in panels[1]:
    assert not panel.get_lines()
    assert [text.get_text() for text in panel.texts] == ['no finished seeds']
    assert len(panel.get_yticks()) == 0
  for panel in panels[2]:
    assert [text.get_text() for text in panel.texts] == ['no seeds used: 1 diverged, 5 missing']

"""Sweeps on the `tiny` variant of runs/sweep_example.py: sharding, resume, config checks.

The tiny sweep has two grid points, fine-tuning learning rates 0.01 and 1e4, and the second
diverges. The module fixture starts the sweep in a subprocess on 4 host devices and kills it
after its first chunk. Meanwhile it runs the reference sweep on 1 device in this process.
The chunks that the subprocess finished are the sharded results, and resuming its workdir
in this process is the kill-and-resume case.
"""

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import ml_collections
import numpy as np
import pytest

from lafit import aggregate
from lafit import experiment
from lafit import io
from lafit import sweep
from runs import sweep_example

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300
STABLE_RATE, DIVERGENT_RATE = 0.01, 1e4  # The grid of the tiny sweep.
NUM_CHUNKS = 4  # 2 grid points x 2 blocks of 3 seeds.


def subprocess_env(num_devices: int | None) -> dict:
  # No compilation cache: the sweep killed mid-way must compile as a fresh process does.
  env = dict(os.environ, JAX_PLATFORMS='cpu', LAFIT_CACHE_DIR='')
  env.pop('XLA_FLAGS', None)
  if num_devices is not None:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={num_devices}'
  return env


def tiny_config() -> ml_collections.ConfigDict:
  return sweep_example.get_config('tiny')


def finished_chunks(workdir) -> dict[str, tuple[int, int]]:
  """Returns `{file name: (inode, mtime in ns)}` of the finished chunk files."""
  directory = os.path.join(workdir, 'chunks')
  if not os.path.isdir(directory):
    return {}
  stats = {}
  for name in os.listdir(directory):
    if name.endswith('.npz') and not name.startswith('.tmp-'):
      stat = os.stat(os.path.join(directory, name))
      stats[name] = (stat.st_ino, stat.st_mtime_ns)
  return stats


def kill_after_first_chunk(process: subprocess.Popen, workdir, outcome: dict) -> None:
  """Sends SIGKILL as soon as a chunk file appears; stores the chunks finished by then."""
  deadline = time.monotonic() + TIMEOUT_S
  while process.poll() is None and time.monotonic() < deadline:
    if finished_chunks(workdir):
      process.send_signal(signal.SIGKILL)
      break
    time.sleep(0.01)
  process.wait(timeout=TIMEOUT_S)
  outcome['returncode'] = process.returncode
  outcome['finished'] = finished_chunks(workdir)


@pytest.fixture(scope='module')
def sweeps(tmp_path_factory):
  root = tmp_path_factory.mktemp('sweeps')
  killed_log = open(root / 'killed.log', 'w')
  killed = subprocess.Popen(
      [sys.executable, '-m', 'lafit.sweep', '--config=runs/sweep_example.py:tiny',
       f'--workdir={root / "killed"}'], cwd=REPO, env=subprocess_env(4),
      stdout=killed_log, stderr=subprocess.STDOUT)
  kill_outcome = {}
  watcher = threading.Thread(target=kill_after_first_chunk,
                             args=(killed, root / 'killed', kill_outcome))
  watcher.start()

  log_records = []
  handler = logging.Handler(logging.WARNING)
  handler.emit = log_records.append
  logging.getLogger('absl').addHandler(handler)
  try:
    reference = sweep.run(tiny_config(), str(root / 'reference'))
  finally:
    logging.getLogger('absl').removeHandler(handler)
    watcher.join(timeout=TIMEOUT_S)
    killed_log.close()
  return {
      'root': root,
      'reference': reference,
      'reference_warnings': [r.getMessage() for r in log_records],
      'kill': kill_outcome,
  }


def chunk_arrays(workdir, name):
  return io.read_npz(os.path.join(workdir, 'chunks', name))


def assert_chunks_equal(actual, expected):
  """Checks that two chunk files have the same arrays, floats to float32 rounding."""
  assert set(actual) == set(expected)
  for key in ('status', 'nonfinite_step', 'seeds'):
    np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
  for key, value in expected.items():
    if value.dtype.kind == 'f':
      np.testing.assert_allclose(actual[key], value, rtol=1e-5, atol=1e-6, err_msg=key)


def test_sharded_chunks_equal_unsharded(sweeps):
  root = sweeps['root']
  finished = sweeps['kill']['finished']
  assert finished, (root / 'killed.log').read_text()[-3000:]
  assert 'on 4 devices (cpu)' in (root / 'killed.log').read_text()

  for name in finished:
    expected = chunk_arrays(root / 'reference', name)
    actual = chunk_arrays(root / 'killed', name)
    meta = json.loads(str(actual['meta']))
    assert meta['num_devices'] == 4
    assert meta['param_devices'] == 4
    assert meta['padded_seeds'] == 4  # 3 seeds per chunk, padded to a multiple of 4.
    assert json.loads(str(expected['meta']))['param_devices'] == 1
    assert_chunks_equal(actual, expected)


def test_killed_sweep_resumes(sweeps, caplog):
  root = sweeps['root']
  workdir = root / 'killed'
  kill = sweeps['kill']
  assert kill['returncode'] == -signal.SIGKILL, (root / 'killed.log').read_text()[-3000:]
  finished = kill['finished']
  assert finished, 'no chunk finished before the kill'
  assert len(finished) < NUM_CHUNKS, 'the sweep finished before the kill; nothing to resume'
  for name in finished:
    chunk_arrays(workdir, name)  # A finished chunk file is complete.

  caplog.set_level(logging.INFO)
  resumed = sweep.run(tiny_config(), str(workdir))

  skipped = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith('Skipping finished chunk')]
  assert len(skipped) == len(finished)
  for name in finished:
    assert any(name.removesuffix('.npz') in message for message in skipped), name
  after = finished_chunks(workdir)
  assert len(after) == NUM_CHUNKS
  for name, stat in finished.items():
    assert after[name] == stat, f'{name} was rewritten'

  # The chunks finished before the kill ran on 4 devices, and the resumed chunks may start
  # from their pretrained models, so the results match to float rounding.
  reference = sweeps['reference']
  np.testing.assert_array_equal(resumed.status, reference.status)
  np.testing.assert_allclose(resumed.values, reference.values, rtol=1e-5, atol=1e-6)
  for name in after:
    expected = chunk_arrays(root / 'reference', name)
    actual = chunk_arrays(workdir, name)
    for key in ('params/pretrained/W_KQ', 'params/zsfs_v/W_V', 'nonfinite_step'):
      if key in expected:
        np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6,
                                   err_msg=f'{name} {key}')


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
    listener.bind(('127.0.0.1', 0))
    return listener.getsockname()[1]


def run_two_processes(tmp_path, workdirs, extra_flags=((), ())) -> list[tuple[int, str]]:
  """Runs the tiny sweep as two processes of 2 host devices each, joined on the loopback.

  Returns the exit status and output of each process.
  """
  port = free_port()
  processes, logs = [], []
  for process_id in range(2):
    logs.append(open(tmp_path / f'process_{process_id}.log', 'w'))
    processes.append(subprocess.Popen(
        [sys.executable, '-m', 'lafit.sweep', '--config=runs/sweep_example.py:tiny',
         f'--workdir={workdirs[process_id]}', *extra_flags[process_id],
         '--config.distributed=True', f'--coordinator_address=127.0.0.1:{port}',
         '--num_processes=2', f'--process_id={process_id}'],
        cwd=REPO, env=subprocess_env(2), stdout=logs[-1], stderr=subprocess.STDOUT))
  try:
    for process in processes:
      process.wait(timeout=TIMEOUT_S)
  finally:
    for process in processes:
      process.kill()
    for log in logs:
      log.close()
  return [(process.returncode, (tmp_path / f'process_{i}.log').read_text())
          for i, process in enumerate(processes)]


def test_two_processes_equal_one(sweeps, tmp_path):
  # The first grid point: 2 chunks, each on a mesh of 4 devices over both processes.
  # Process 1 reaches the shared workdir through a symbolic link, as a host with another
  # mount point would.
  workdir = tmp_path / 'two_processes'
  workdir.mkdir()
  (tmp_path / 'link').symlink_to(workdir)
  first_point = f'--config.grid.finetune.learning_rate=({STABLE_RATE},)'
  for returncode, output in run_two_processes(tmp_path, [workdir, tmp_path / 'link'],
                                              [[first_point]] * 2):
    assert returncode == 0, output[-3000:]
    assert 'on 4 devices (cpu)' in output

  names = sorted(finished_chunks(workdir))
  assert names == ['g0000_s0000-0002.npz', 'g0000_s0003-0005.npz']
  for name in names:
    expected = chunk_arrays(sweeps['root'] / 'reference', name)
    actual = chunk_arrays(workdir, name)
    meta = json.loads(str(actual['meta']))
    assert meta['num_devices'] == 4
    assert meta['param_devices'] == 4
    assert_chunks_equal(actual, expected)


def test_interrupted_sweep_says_resume(tmp_path):
  # Chunks of one seed, so that chunks remain when the first one is finished.
  workdir = tmp_path / 'interrupted'
  process = subprocess.Popen(
      [sys.executable, '-m', 'lafit.sweep', '--config=runs/sweep_example.py:tiny',
       f'--workdir={workdir}', '--config.seeds_per_chunk=1', '--config.base.plots=False'],
      cwd=REPO, env=subprocess_env(None), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
      text=True)
  deadline = time.monotonic() + TIMEOUT_S
  while not finished_chunks(workdir) and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.01)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=TIMEOUT_S)
  assert process.returncode == 130, stderr[-3000:]
  assert (f'Interrupted. The finished chunks are saved in {workdir}: run the same command '
          'again to resume.') in stderr
  assert 'Traceback' not in stderr
  assert 1 <= len(finished_chunks(workdir)) < 12
  assert not [name for name in os.listdir(workdir / 'chunks') if name.startswith('.tmp-')]


@pytest.mark.parametrize('other, message', [
    ('config', r'Error: process 1 runs another config than process 0 \(fields that differ: '
               r'grid\.finetune\.learning_rate\)'),
    ('workdir', r'Error: --workdir is not shared: process 1 cannot read the file '
                r'\.shared-disk-check that process 0 wrote into its --workdir'),
], ids=['config', 'workdir'])
def test_processes_that_differ_stop(tmp_path, other, message):
  # Process 1 gets another grid, or a workdir of its own that process 0 does not share.
  workdirs = [tmp_path / 'shared', tmp_path / ('own' if other == 'workdir' else 'shared')]
  extra_flags = [[], ['--config.grid.finetune.learning_rate=(0.02,)'] if other == 'config'
                 else []]
  for returncode, output in run_two_processes(tmp_path, workdirs, extra_flags):
    assert returncode == 1, output[-3000:]
    assert re.search(message, output), output[-3000:]
  assert not (tmp_path / 'shared' / 'chunks').exists()


@pytest.mark.parametrize('distributed, flags, message', [
    (False, dict(num_processes=2, process_id=0),
     '--num_processes=2 needs --config.distributed=True'),
    (True, dict(num_processes=2), '--num_processes=2 needs --process_id too'),
    (True, dict(process_id=1), '--process_id=1 needs --num_processes too'),
    (True, dict(num_processes=2, process_id=2),
     r'--process_id=2 is invalid: expected an integer in \[0, 1\]'),
    (True, dict(num_processes=0, process_id=0),
     '--num_processes=0 is invalid: expected an integer >= 1'),
    (True, dict(coordinator_address='localhost'),
     '--coordinator_address=localhost is invalid: expected host:port with a port in '
     r'1\.\.65535'),
    (True, dict(coordinator_address='127.0.0.1:70000'),
     '--coordinator_address=127.0.0.1:70000 is invalid'),
])
def test_bad_process_flags_rejected(distributed, flags, message):
  arguments = dict(coordinator_address=None, num_processes=None, process_id=None)
  arguments.update(flags)
  with pytest.raises(ValueError, match=message):
    sweep.check_distributed_flags(distributed, **arguments)


def test_command_line_bad_process_id(tmp_path):
  command = [sys.executable, '-m', 'lafit.sweep', '--config=runs/sweep_example.py:tiny',
             f'--workdir={tmp_path / "workdir"}', '--config.distributed=True',
             '--coordinator_address=127.0.0.1:1', '--num_processes=2', '--process_id=-1']
  done = subprocess.run(command, cwd=REPO, env=subprocess_env(None), capture_output=True,
                        text=True, timeout=TIMEOUT_S)
  assert done.returncode != 0
  assert 'Error: --process_id=-1 is invalid: expected an integer in [0, 1]' in done.stderr
  assert not (tmp_path / 'workdir').exists()


@pytest.mark.parametrize('seed', [0, pytest.param(4, marks=pytest.mark.slow)])
def test_seed_matches_single_experiment_run(sweeps, tmp_path, seed):
  # Seed 4 is the second seed of the second chunk, so its keys come from its own seed
  # value and not from its position in the vmapped batch.
  config = sweep.make_plan(tiny_config()).points[0].config
  config.seed = seed
  results = experiment.run(config, str(tmp_path))

  grid_point = sweeps['reference'].select(learning_rate=STABLE_RATE, seed=seed)
  assert results['models'] == grid_point.coords['model']
  for model in results['models']:
    for task in results['tasks']:
      expected = np.asarray(results['test_error'][model][task])
      actual = grid_point.select(model=model, task=task).values
      np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6,
                                 err_msg=f'{model} {task}')

  chunk = chunk_arrays(sweeps['root'] / 'reference', 'g0000_s0003-0005.npz' if seed >= 3
                       else 'g0000_s0000-0002.npz')
  row = list(chunk['seeds']).index(seed)
  for model in results['models']:
    saved = io.read_npz(str(tmp_path / 'models' / f'{model}.npz'))
    for leaf in ('W_KQ', 'W_V'):
      np.testing.assert_allclose(chunk[f'params/{model}/{leaf}'][row], saved[f'params/{leaf}'],
                                 rtol=1e-5, atol=1e-6, err_msg=f'{model} {leaf}')


def test_summary_written(sweeps):
  root = sweeps['root'] / 'reference'
  summary = (root / 'summary.md').read_text()
  assert '| finetune.learning_rate | model | seeds |' in summary
  assert summary.count('| 6/6 |') == 3  # Both pretrained models, zsfs_v at rate 0.01.
  assert '| 1e+04 | zsfs_v | 0/6 | no seeds |' in summary
  assert 'Seeds excluded from the means: 6.' in summary
  description = io.read_json(str(root / 'sweep.json'))
  assert description['axes'] == [{'field': 'finetune.learning_rate',
                                   'values': [STABLE_RATE, DIVERGENT_RATE]}]
  assert len(os.listdir(root / 'pretrained')) == 2  # Shared by both grid points.


def test_workdir_of_other_config_rejected(sweeps):
  config = tiny_config()
  config.base.finetune.num_steps += 1
  with pytest.raises(ValueError, match=r'different config .*fields that differ: '
                                       r'base\.finetune\.num_steps\)'):
    sweep.run(config, str(sweeps['root'] / 'reference'))


def test_new_blocks_of_seeds_rejected(sweeps):
  # The reference has finished blocks of seeds 0-2 and 3-5. One block of all 6 seeds, or
  # blocks of 2, would reuse none of them.
  for seeds_per_chunk in (0, 2):
    config = tiny_config()
    config.seeds_per_chunk = seeds_per_chunk
    with pytest.raises(ValueError, match=f'num_seeds=6 with seeds_per_chunk={seeds_per_chunk} '
                                         'would reuse none of them'):
      sweep.check_workdir(str(sweeps['root'] / 'reference'), sweep.make_plan(config))


def test_more_seeds_extend_sweep(sweeps, tmp_path):
  workdir = tmp_path / 'extended'
  shutil.copytree(sweeps['root'] / 'reference', workdir)
  before = finished_chunks(workdir)
  config = tiny_config()
  config.num_seeds = 7  # One more block, of seed 6, per grid point.
  record = sweep.run(config, str(workdir))

  after = finished_chunks(workdir)
  assert {name: after[name] for name in before} == before  # Kept, not rewritten.
  assert sorted(set(after) - set(before)) == ['g0000_s0006-0006.npz', 'g0001_s0006-0006.npz']
  assert list(record.coords['seed']) == list(range(7))
  # The first 6 seeds come from the kept chunks. NaN marks the diverged grid point.
  seed_axis = record.dims.index('seed')
  np.testing.assert_array_equal(np.take(record.values, range(6), axis=seed_axis),
                                sweeps['reference'].values)
  assert np.isfinite(record.select(learning_rate=STABLE_RATE, seed=6).values).all()


def with_field(config, field, value) -> ml_collections.ConfigDict:
  """Returns a copy of `config` with `field` set, even to a value of another type."""
  config_dict = config.to_dict()
  *parents, leaf = field.split('.')
  target = config_dict
  for parent in parents:
    target = target.setdefault(parent, {})
  target[leaf] = value
  return ml_collections.ConfigDict(config_dict)


@pytest.mark.parametrize('field,value,message', [
    ('num_seeds', 0, 'config.num_seeds=0 is invalid: expected an integer >= 1'),
    ('seeds_per_chunk', -1, 'config.seeds_per_chunk=-1 is invalid'),
    ('distributed', 'yes', 'config.distributed=\'yes\' is invalid'),
    ('seeds', 3, 'config.seeds is not a sweep field'),
    ('base.d', 0, 'config.base.d=0 is invalid: expected an integer >= 1'),
    ('base.eval.method', 'both', 'config.base.eval.method=\'both\' is invalid'),
    ('grid.noise_std', (0.5, -0.1), 'config.base.noise_std=-0.1 is invalid: expected a '
     'number >= 0.0. The value comes from the grid point finetune.learning_rate=0.01, '
     'noise_std=-0.1'),
    ('grid.pretrain.n_shots', (2.5,), 'config.base.pretrain.n_shots=2.5 is invalid'),
    ('grid.seed', (1, 2), 'config.grid.seed=.* a grid cannot vary seed'),
    ('grid.eval.n_max', (4, 8), 'config.grid.eval.n_max=.* every grid point shares the n '
     'axis'),
    ('grid.width', (1, 2), 'config.grid.width=.* width is not a field of config.base'),
    ('grid.finetune.n_shots', (), 'config.grid.finetune.n_shots=.* expected a non-empty'),
    ('grid.finetune.n_shots', 4, 'config.grid.finetune.n_shots=4 is invalid: expected a '
     'non-empty list'),
    ('grid.finetune.n_shots', (4, 4), 'the value 4 appears twice'),
    ('grid.regime', ('zsv',), "config.grid.regime='zsv' is invalid: with "
     "parameterization='merged' the valid regimes are zs_all, zs_v, zs_kq, zsfs_all, zsfs_v, "
     'zsfs_kq'),
    ('grid.regime', ('zs_q',), "config.grid.regime='zs_q' is invalid: with parameterization"),
    ('grid.finetune.losses', ('fs',), 'config.base.finetune.losses=.* zs or zsfs'),
])
def test_bad_config_rejected_before_work(tmp_path, monkeypatch, field, value, message):
  config = with_field(tiny_config(), field, value)

  def fail_if_called(*args, **kwargs):
    raise AssertionError('the sweep compiled or ran something for an invalid config')

  monkeypatch.setattr(sweep, 'runner_for', fail_if_called)
  monkeypatch.setattr(sweep, 'make_mesh', fail_if_called)
  with pytest.raises(ValueError, match=message.replace('(', r'\(').replace(')', r'\)')):
    sweep.run(config, str(tmp_path / 'workdir'))
  assert not (tmp_path / 'workdir').exists()


def test_alias_and_conflicting_grid_keys():
  config = tiny_config()
  config.grid = ml_collections.ConfigDict({'finetune': {'n_shots': (4, 6)}})
  config.grid.regime = ('zs_v', 'zsfs_kq')
  config.grid.learning_rate = (0.01, 0.02)
  plan = sweep.make_plan(config)
  assert [field for field, _ in plan.axes] == ['finetune.n_shots', 'learning_rate', 'regime']
  assert len(plan.points) == 8
  point = plan.points[-1]
  assert point.values == {'finetune.n_shots': 6, 'learning_rate': 0.02, 'regime': 'zsfs_kq'}
  assert point.config.pretrain.learning_rate == 0.02
  assert point.config.finetune.learning_rate == 0.02
  assert point.config.finetune.losses == ('zsfs',)
  assert point.config.finetune.trainable == ('kq',)
  assert point.models == ('pretrained', 'finetuned')
  assert plan.models == ['pretrained', 'finetuned']

  config.grid.pretrain = ml_collections.ConfigDict({'learning_rate': (0.1,)})
  with pytest.raises(ValueError, match='cannot also vary pretrain.learning_rate'):
    sweep.make_plan(config)


def test_regime_list_axis_marks_absent_models():
  config = tiny_config()
  config.grid.finetune.trainable = ('v', ('v', 'kq'))
  assert len(sweep.make_plan(config).points) == 4
  plan = sweep.make_plan(config)
  assert plan.points[0].models == ('pretrained', 'zsfs_v')
  assert plan.points[1].models == ('pretrained', 'zsfs_v', 'zsfs_kq')
  assert plan.models == ['pretrained', 'zsfs_v', 'zsfs_kq']


def test_command_line_bad_value(tmp_path):
  command = [sys.executable, '-m', 'lafit.sweep', '--config=runs/sweep_example.py:tiny',
             f'--workdir={tmp_path / "workdir"}', '--config.grid.finetune.learning_rate=(0.01,-1.0)']
  done = subprocess.run(command, cwd=REPO, env=subprocess_env(None), capture_output=True,
                        text=True, timeout=TIMEOUT_S)
  assert done.returncode != 0
  assert 'config.base.finetune.learning_rate=-1.0 is invalid' in done.stderr
  assert not (tmp_path / 'workdir').exists()


def test_divergent_finetuning_flagged(sweeps):
  record = sweeps['reference'].select(learning_rate=DIVERGENT_RATE)
  finetuned = record.select(model='zsfs_v')
  assert finetuned.status.tolist() == [aggregate.STATUS['diverged']] * 6
  assert np.all(finetuned.nonfinite_step >= 0)
  assert np.all(np.isnan(finetuned.values))
  pretrained = record.select(model='pretrained')
  assert pretrained.status.tolist() == [aggregate.STATUS['ok']] * 6
  assert np.all(np.isfinite(pretrained.values))

  summary = record.mean_over_seeds()
  model_index = summary.coords['model'].index('zsfs_v')
  assert np.all(summary.num_used[model_index] == 0)
  assert np.all(np.isnan(summary.mean[model_index]))
  for seed, step in zip(record.coords['seed'], finetuned.nonfinite_step):
    message = f'zsfs_v: seed {seed} diverged at step {step}'
    assert any(message in m for m in sweeps['reference_warnings']), message
  table = (sweeps['root'] / 'reference' / 'summary.md').read_text()
  step = finetuned.nonfinite_step[0]
  assert f'| 1e+04 | zsfs_v | 0 | diverged | {step} |' in table


def test_divergent_pretraining_skips_finetuning(tmp_path, caplog):
  config = tiny_config()
  config.grid = ml_collections.ConfigDict()
  config.num_seeds = 2
  config.seeds_per_chunk = 0
  config.base.clip_norm = 0.0
  config.base.init_std = 1.0
  config.base.pretrain.learning_rate = 1e4
  caplog.set_level(logging.WARNING)
  record = sweep.run(config, str(tmp_path))

  assert record.dims == ('seed', 'model', 'task', 'n')
  assert record.select(model='pretrained').status.tolist() == [aggregate.STATUS['diverged']] * 2
  assert np.all(record.select(model='pretrained').nonfinite_step >= 0)
  assert (record.select(model='zsfs_v').status.tolist()
          == [aggregate.STATUS['pretrain_diverged']] * 2)
  assert np.all(np.isnan(record.values))
  assert any('skipped because pretraining diverged' in r.getMessage() for r in caplog.records)


def test_tail_average_matches_experiment_run(tmp_path):
  config = tiny_config()
  config.grid = ml_collections.ConfigDict()
  config.num_seeds = 1
  config.seeds_per_chunk = 0
  config.base.plots = False
  config.base.pretrain.average_steps = 5
  config.base.finetune.average_steps = 4
  sweep.run(config, str(tmp_path / 'sweep'))
  point_config = sweep.make_plan(config).points[0].config
  experiment.run(point_config, str(tmp_path / 'run'))
  chunk = chunk_arrays(tmp_path / 'sweep', 'g0000_s0000-0000.npz')
  for model in json.loads(str(chunk['meta']))['models']:
    saved = io.read_npz(str(tmp_path / 'run' / 'models' / f'{model}.npz'))
    for leaf in ('W_KQ', 'W_V'):
      np.testing.assert_allclose(chunk[f'params/{model}/{leaf}'][0], saved[f'params/{leaf}'],
                                 rtol=1e-5, atol=1e-6, err_msg=f'{model} {leaf}')

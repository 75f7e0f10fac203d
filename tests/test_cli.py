"""The command lines' handling of bad input: one line naming the flag, before any work."""

import os
import re
import subprocess
import sys

import ml_collections
import pytest

from lafit import cli
from lafit import config as config_lib
from lafit import io
from runs import paper

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plural_counts():
  assert [cli.plural(count, 'chunk') for count in (0, 1, 2)] == ['0 chunks', '1 chunk',
                                                                 '2 chunks']


def test_differing_fields_are_dotted():
  a = {'d': 5, 'finetune': {'num_steps': 10, 'losses': ['zs']}, 'seed': 0}
  b = {'d': 5, 'finetune': {'num_steps': 20, 'losses': ['zs'], 'extra': 1}, 'plots': True}
  assert io.differing_fields(a, b) == ['finetune.extra', 'finetune.num_steps', 'plots', 'seed']
  assert io.differing_fields(a, a) == []


def test_workdir_path_checked(tmp_path):
  cli.check_workdir(str(tmp_path / 'new'))
  cli.check_workdir(str(tmp_path))
  with pytest.raises(ValueError, match='--workdir is empty'):
    cli.check_workdir('')
  (tmp_path / 'file').write_text('')
  with pytest.raises(ValueError, match=f'--workdir={re.escape(str(tmp_path / "file"))} is a file'):
    cli.check_workdir(str(tmp_path / 'file'))


def test_missing_field_named():
  config = paper.get_config('quick')
  del config['finetune']['num_steps']
  with pytest.raises(ValueError, match='config.finetune.num_steps is missing'):
    config_lib.validate(config)
  sweep_like = ml_collections.ConfigDict({'base': paper.get_config(), 'grid': {}})
  with pytest.raises(ValueError, match='is a sweep config .* python -m lafit.sweep'):
    config_lib.validate(sweep_like)


def test_sibling_config_loads_anywhere(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  sibling = config_lib.load_sibling(os.path.join(REPO, 'runs', 'quick_seeds.py'), 'paper')
  assert sibling.get_config('quick').to_dict() == paper.get_config('quick').to_dict()


def command_line(tmp_path, module: str, *flags: str, cwd: str = REPO):
  env = dict(os.environ, JAX_PLATFORMS='cpu', LAFIT_CACHE_DIR='')
  return subprocess.run([sys.executable, '-m', module, *flags], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


CASES = {
    'empty workdir': (
        ['lafit', '--config=runs/paper.py:quick', '--workdir='],
        'Error: --workdir is empty: expected the path of a directory'),
    'workdir is a file': (
        ['lafit.sweep', '--config=runs/sweep_example.py:tiny', '--workdir={tmp}/file'],
        'Error: --workdir={tmp}/file is a file: expected the path of a directory.'),
    'unknown field': (
        ['lafit', '--config=runs/paper.py:quick', '--workdir={tmp}/w',
         '--config.finetune.nonexistent=3'],
        "Error: --config.finetune.nonexistent=3 is invalid: the config has no field "
        "'nonexistent'."),
    'missing config file': (
        ['lafit.sweep', '--config=runs/nope.py', '--workdir={tmp}/w'],
        'Error: --config=runs/nope.py could not be loaded: [Errno 2] No such file or directory'),
    'bad value type': (
        ['lafit', '--config=runs/paper.py:quick', '--workdir={tmp}/w', '--config.d=abc'],
        "Error: flag --config.d=abc: invalid literal for int() with base 10: 'abc'."),
    'sweep config to lafit': (
        ['lafit', '--config=runs/sweep_example.py', '--workdir={tmp}/w'],
        'Error: the config is a sweep config (it has the fields base and grid): run it with '
        'python -m lafit.sweep.'),
    'sweep workdir to lafit': (
        ['lafit', '--config=runs/paper.py:quick', '--workdir={tmp}/sweep'],
        'Error: --workdir={tmp}/sweep contains a sweep (sweep.json)'),
    'run workdir to sweep': (
        ['lafit.sweep', '--config=runs/sweep_example.py:tiny', '--workdir={tmp}/run'],
        'Error: --workdir={tmp}/run contains a single run of python -m lafit (config.json)'),
}


@pytest.mark.parametrize('case', CASES)
def test_bad_command_line_one_line(tmp_path, case):
  (tmp_path / 'file').write_text('')
  for directory, name in (('sweep', 'sweep.json'), ('run', 'config.json')):
    (tmp_path / directory).mkdir()
    (tmp_path / directory / name).write_text('{}')
  args, message = CASES[case]
  done = command_line(tmp_path, args[0], *(arg.format(tmp=tmp_path) for arg in args[1:]))
  assert done.returncode == 1
  assert message.format(tmp=tmp_path) in done.stderr
  assert 'Traceback' not in done.stderr
  assert not (tmp_path / 'w').exists()


def test_sweep_config_from_other_directory(tmp_path):
  # The config loads runs/paper.py beside it. The error about its value shows that it loaded.
  done = command_line(tmp_path, 'lafit.sweep',
                      f'--config={os.path.join(REPO, "runs", "sweep_example.py")}:tiny',
                      f'--workdir={tmp_path / "w"}', '--config.num_seeds=0', cwd=str(tmp_path))
  assert done.returncode == 1
  assert 'Error: config.num_seeds=0 is invalid: expected an integer >= 1.' in done.stderr

"""Validation of experiment configurations, before anything is compiled."""

import importlib.util
import math
import os
import types

import ml_collections

from lafit import model as model_lib
from lafit import regimes

EVAL_TASKS = ('theta0', 'neg_theta0', 'sphere')
EVAL_METHODS = ('auto', 'exact', 'monte_carlo', 'both')
FS_WEIGHT_SCHEDULES = ('linear_decay', 'constant')
PRETRAIN_SAMPLERS = ('auto', 'tokens', 'gram')


def load_sibling(config_file: str, name: str) -> types.ModuleType:
  """Loads the config file `name.py` from the directory of `config_file`.

  A config file that builds on another one (a sweep on `runs/paper.py`) calls
  `load_sibling(__file__, 'paper')`, which works from any working directory, where
  `from runs import paper` works only from the repository root.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'lafit_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _fail(field: str, value, valid: str) -> None:
  raise ValueError(f'config.{field}={value!r} is invalid: {valid}.')


def _check_int(config, field: str, minimum: int) -> None:
  value = _lookup(config, field)
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    _fail(field, value, f'expected an integer >= {minimum}')


def _check_float(config, field: str, *, minimum: float, strict: bool) -> None:
  value = _lookup(config, field)
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    _fail(field, value, 'expected a finite number')
  if value < minimum or (strict and value == minimum):
    _fail(field, value, f'expected a number {">" if strict else ">="} {minimum}')


def _check_choice(config, field: str, choices) -> None:
  value = _lookup(config, field)
  if value not in choices:
    _fail(field, value, f'valid values are {", ".join(choices)}')


def _lookup(config, field: str):
  value = config
  for part in field.split('.'):
    if not isinstance(value, ml_collections.ConfigDict) or part not in value:
      raise ValueError(f'config.{field} is missing: an experiment config has the fields of '
                       'runs/paper.py.')
    value = value[part]
  return value


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises `ValueError` naming the field, its value and the valid range for bad input."""
  if 'base' in config and 'grid' in config:
    raise ValueError('the config is a sweep config (it has the fields base and grid): run it '
                     'with python -m lafit.sweep.')
  _check_int(config, 'seed', 0)
  _check_int(config, 'd', 1)
  _check_float(config, 'x_std', minimum=0.0, strict=True)
  _check_float(config, 'noise_std', minimum=0.0, strict=False)

  _check_choice(config, 'parameterization', model_lib.PARAMETERIZATIONS)
  _check_int(config, 'num_layers', 1)
  _check_int(config, 'num_heads', 1)
  _check_float(config, 'init_std', minimum=0.0, strict=False)

  _check_choice(config, 'optimizer', regimes.OPTIMIZERS)
  _check_float(config, 'momentum', minimum=0.0, strict=False)
  if config.momentum >= 1:
    _fail('momentum', config.momentum, 'expected a number in [0, 1)')
  for field in ('adam_b1', 'adam_b2'):
    _check_float(config, field, minimum=0.0, strict=False)
    if _lookup(config, field) >= 1:
      _fail(field, _lookup(config, field), 'expected a number in [0, 1)')
  _check_float(config, 'clip_norm', minimum=0.0, strict=False)

  for phase in ('pretrain', 'finetune'):
    _check_int(config, f'{phase}.n_shots', 0)
    _check_int(config, f'{phase}.batch_size', 1)
    _check_int(config, f'{phase}.num_steps', 1)
    _check_float(config, f'{phase}.learning_rate', minimum=0.0, strict=True)
    _check_int(config, f'{phase}.average_steps', 0)
    if _lookup(config, f'{phase}.average_steps') > _lookup(config, f'{phase}.num_steps'):
      _fail(f'{phase}.average_steps', _lookup(config, f'{phase}.average_steps'),
            f'expected at most {phase}.num_steps={_lookup(config, f"{phase}.num_steps")}')

  _check_choice(config, 'pretrain.sampler', PRETRAIN_SAMPLERS)
  if config.pretrain.sampler == 'gram' and config.num_layers != 1:
    _fail('pretrain.sampler', config.pretrain.sampler,
          f'the gram sampler needs num_layers=1, got {config.num_layers}; use tokens')

  _check_int(config, 'finetune.dataset_size', 0)
  valid_trainable = tuple(regimes.TRAINABLE[config.parameterization])
  if not config.finetune.losses:
    _fail('finetune.losses', config.finetune.losses, 'expected at least one of zs, zsfs')
  for loss in config.finetune.losses:
    if loss not in ('zs', 'zsfs'):
      _fail('finetune.losses', config.finetune.losses, 'each entry must be zs or zsfs')
  if not config.finetune.trainable:
    _fail('finetune.trainable', config.finetune.trainable,
          f'expected at least one of {", ".join(valid_trainable)}')
  for trainable in config.finetune.trainable:
    if trainable not in valid_trainable:
      _fail('finetune.trainable', config.finetune.trainable,
            f'with parameterization={config.parameterization!r} each entry must be one of '
            f'{", ".join(valid_trainable)}')
  _check_choice(config, 'finetune.fs_weight_schedule', FS_WEIGHT_SCHEDULES)
  _check_float(config, 'finetune.fs_weight', minimum=0.0, strict=False)

  _check_int(config, 'eval.n_max', 0)
  for task in config.eval.tasks:
    if task not in EVAL_TASKS:
      _fail('eval.tasks', config.eval.tasks, f'each entry must be one of {", ".join(EVAL_TASKS)}')
  if not config.eval.tasks:
    _fail('eval.tasks', config.eval.tasks, f'expected at least one of {", ".join(EVAL_TASKS)}')
  _check_choice(config, 'eval.method', EVAL_METHODS)
  if config.eval.method == 'exact' and (config.num_layers, config.num_heads) != (1, 1):
    _fail('eval.method', config.eval.method,
          'the exact risk needs num_layers=1 and num_heads=1; use monte_carlo or auto')
  _check_int(config, 'eval.num_prompts', 1)
  _check_int(config, 'eval.num_seeds', 1)
  _check_int(config, 'eval.chunk_size', 1)
  if not isinstance(config.eval.theory, bool):
    _fail('eval.theory', config.eval.theory, 'expected True or False')

  _check_int(config, 'trace_stride', 1)
  _check_int(config, 'log_every', 1)

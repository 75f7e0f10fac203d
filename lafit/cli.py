"""Command-line plumbing shared by `lafit`, `lafit.sweep` and `lafit.aggregate`.

Bad input ends a command with one line, `Error: ...`, that names the flag, the value and
the valid range, before JAX compiles anything. An interrupted command prints where its
finished work is.
"""

import logging as std_logging
import os
import re
import sys
from typing import NoReturn

from absl import flags
from absl import logging


def fail(message: str) -> NoReturn:
  """Exits with status 1 after printing `Error: message` to standard error."""
  sys.exit(f'Error: {message}')


def log_progress() -> None:
  """Logs at INFO level, without JAX's INFO lines about the backends it did not find.

  JAX tries every platform it supports and logs each one missing at INFO level ("Unable to
  initialize backend 'tpu'"), which would open the log of every command on a CPU. Its
  warnings, such as a GPU without a CUDA-enabled jaxlib, are still shown.
  """
  logging.set_verbosity(logging.INFO)
  std_logging.getLogger('jax._src.xla_bridge').setLevel(std_logging.WARNING)


def exit_now(message: str, status: int) -> NoReturn:
  """Prints `message` to standard error and ends the process at once.

  It skips the interpreter's shutdown: after an interrupt, XLA may still be running a
  program, and tearing down the interpreter under it can crash. Files written atomically
  (`lafit.io`) are complete or absent either way.
  """
  logging.flush()
  print(message, file=sys.stderr, flush=True)
  os._exit(status)  # pylint: disable=protected-access


def _unknown_field_message(argv: list[str], error: Exception) -> str:
  # ml_collections names only the missing key, as "'key'", so find the override that has it.
  field = str(error).strip('\'"')
  pattern = re.compile(rf'--config(\.\w+)*\.{re.escape(field)}(\.|=|$)')
  overrides = [arg for arg in argv[1:] if pattern.match(arg)]
  flag = overrides[0] if overrides else f'--config.{field}'
  return (f'{flag} is invalid: the config has no field {field!r}. Check the path of the '
          'field against the config file.')


def _one_line(message: str) -> str:
  """Keeps the first line of a message and, after a traceback, its last line."""
  lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
  if len(lines) > 1 and any(line.startswith('Traceback') for line in lines):
    return f'{lines[0]} {lines[-1]}'
  return ' '.join(lines)


def parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags as absl does, and reports any bad flag as one line.

  Pass it to `app.run(main, flags_parser=parse_flags)`. It shortens absl's own errors to
  one line. It also reports two cases that would otherwise end in a traceback: an
  override `--config.x=...` of a field that the config does not have, and a config file
  that does not exist.
  """
  try:
    remaining = flags.FLAGS(argv)
  except flags.Error as error:
    fail(f'{_one_line(str(error)).rstrip(".")}. --helpfull lists every flag.')
  except (AttributeError, KeyError) as error:
    fail(_unknown_field_message(argv, error))
  if 'config' in flags.FLAGS and flags.FLAGS['config'].present:
    try:
      list(flags.FLAGS.config.keys())
    except (OSError, ValueError, ImportError) as error:
      config_flag = [arg for arg in argv[1:] if arg.startswith('--config=')]
      reason = str(error).strip().splitlines()[-1].strip()
      fail(f'{config_flag[0] if config_flag else "--config"} could not be loaded: {reason}')
  return remaining


def check_workdir(workdir: str | None) -> None:
  """Rejects an empty `--workdir`, or one that exists and is not a directory.

  Raises:
    ValueError: naming `--workdir` and its value.
  """
  if not workdir:
    raise ValueError('--workdir is empty: expected the path of a directory, which is '
                     'created if it does not exist.')
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f'--workdir={workdir} is a file: expected the path of a directory.')


def plural(count: int, noun: str) -> str:
  """Returns `1 chunk`, `2 chunks`: the count with the noun in the right number."""
  return f'{count} {noun}' if count == 1 else f'{count} {noun}s'

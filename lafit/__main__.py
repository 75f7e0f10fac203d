"""Command line: `python -m lafit --config=runs/paper.py[:quick] --workdir=DIR`.

Every config field can be overridden, e.g. `--config.finetune.num_steps=100`. Compiled
programs are cached on disk (`--compilation_cache`, see `lafit.cache`).
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from lafit import cache
from lafit import claims
from lafit import cli
from lafit import config as config_lib
from lafit import experiment

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, optionally with a variant: runs/paper.py:quick.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results, models and figures.')
_COMPILATION_CACHE = cache.define_flag()
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  cli.log_progress()
  # Bad input is reported as one line, not a traceback; nothing has been compiled yet.
  try:
    config_lib.validate(_CONFIG.value)
    cli.check_workdir(_WORKDIR.value)
    experiment.check_workdir(_WORKDIR.value, _CONFIG.value.to_dict())
  except ValueError as error:
    cli.fail(str(error))
  cache.enable_compilation_cache(_COMPILATION_CACHE.value)
  try:
    results = experiment.run(_CONFIG.value, _WORKDIR.value)
  except KeyboardInterrupt:
    cli.exit_now(f'Interrupted. The models finished so far are saved in {_WORKDIR.value}: '
                 'run the same command again to reuse them.', 130)
  print(claims.summary(results['claims']))
  gaps = experiment.theory_summary(results)
  if gaps:
    print(gaps)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)

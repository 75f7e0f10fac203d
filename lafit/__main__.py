"""Command line: `python -m lafit --config=runs/paper.py[:quick] --workdir=DIR`.

Every config field can be overridden, e.g. `--config.finetune.num_steps=100`.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from lafit import claims
from lafit import experiment

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, optionally with a variant: runs/paper.py:quick.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for results, models and figures.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  logging.set_verbosity(logging.INFO)
  results = experiment.run(_CONFIG.value, _WORKDIR.value)
  print(claims.summary(results['claims']))
  gaps = experiment.theory_summary(results)
  if gaps:
    print(gaps)


if __name__ == '__main__':
  app.run(main)

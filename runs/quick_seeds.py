r"""Many training seeds of the quick reference protocol, in one sweep call.

Each seed runs `runs/paper.py:quick` (500 pretraining steps and 500 fine-tuning steps per
regime, batch 5000, every regime) with exact evaluation. The seeds train in blocks of 8, one
compiled `vmap` call per block. On a 2-core CPU a block of 8 costs 1.02 times 8 single seeds
per step, but one block of 64 costs 1.55 times 64, because its working set leaves the
caches (`benchmarks/run_benchmarks.py --sections=seeds`). On an accelerator, larger
blocks (`--config.seeds_per_chunk=0`, all seeds at once) are the better choice.

  python -m lafit.sweep --config=runs/quick_seeds.py --workdir=/tmp/lafit_quick_seeds

`--config.num_seeds=S` changes the number of seeds; the benchmark runs 1 and 64.
"""

import ml_collections

from lafit import config as config_lib

paper = config_lib.load_sibling(__file__, 'paper')


def get_config() -> ml_collections.ConfigDict:
  """Returns the quick protocol over 64 training seeds, in blocks of 8."""
  config = ml_collections.ConfigDict()
  config.base = paper.get_config('quick')
  config.base.eval.theory = False  # Sweeps compute no theory curves.
  config.base.eval.method = 'auto'  # Exact for one layer.
  config.base.plots = False
  config.grid = ml_collections.ConfigDict()
  config.num_seeds = 64
  config.seeds_per_chunk = 8
  config.distributed = False
  return config

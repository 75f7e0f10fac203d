r"""A sweep of the reference experiment over label noise and fine-tuning prompt length.

Studies how the label noise sigma and the number of shots n_ft in fine-tuning prompts
change what fine-tuning keeps of in-context learning: sigma^2 in {0.1, 0.25} crossed with
n_ft in {10, 20}, 8 seeds each, every fine-tuning regime of `runs/paper.py`, with shorter
training (300 pretraining and 200 fine-tuning steps, batches of 1000 prompts) so that the
whole grid runs on a CPU. The two n_ft values share their pretrained models. The full
protocol trains 5000 steps per phase, so these short runs do not converge and show trends
of short training, not the values of the full protocol.

  python -m lafit.sweep --config=runs/sweep_example.py --workdir=/tmp/lafit_sweep

Variants: `tiny`, for the tests: d = 2, a few steps, one regime, 6 seeds in chunks of 3,
and a grid over the fine-tuning learning rate whose second value, 1e4, diverges.
Re-running the same command skips finished chunks. `python -m lafit.aggregate
--workdir=/tmp/lafit_sweep` rewrites the summary and figures.

Measured wall time with jax 0.10.2 on a 2-core x86-64 CPU machine without GPU, with no
compilation cache (`--compilation_cache=`): default 59 s, tiny 15 s.
"""

import ml_collections

from lafit import config as config_lib

paper = config_lib.load_sibling(__file__, 'paper')


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  """Returns the sweep config, or a named variant of it (`tiny`)."""
  config = ml_collections.ConfigDict()
  config.base = paper.get_config()
  config.base.pretrain.batch_size = 1000
  config.base.pretrain.num_steps = 300
  config.base.finetune.batch_size = 1000
  config.base.finetune.num_steps = 200
  config.base.eval.theory = False  # Sweeps compute no theory curves.
  config.base.eval.method = 'auto'  # One test error per model: exact for one layer.
  config.base.log_every = 100
  config.base.plots = True

  config.grid = ml_collections.ConfigDict()
  config.grid.noise_std = (0.1 ** 0.5, 0.5)
  config.grid.finetune = ml_collections.ConfigDict()
  config.grid.finetune.n_shots = (10, 20)

  config.num_seeds = 8
  config.seeds_per_chunk = 0  # 0: every seed of a grid point in one chunk.
  config.distributed = False  # True: run over several processes or hosts (lafit.sweep).

  if variant == 'tiny':
    base = config.base
    base.d = 2
    base.pretrain.n_shots = 6
    base.pretrain.batch_size = 64
    base.pretrain.num_steps = 20
    base.finetune.n_shots = 4
    base.finetune.batch_size = 64
    base.finetune.num_steps = 10
    base.finetune.dataset_size = 500
    base.finetune.losses = ('zsfs',)
    base.finetune.trainable = ('v',)
    base.eval.n_max = 6
    base.clip_norm = 0.0  # No gradient clipping, so that the learning rate 1e4 diverges.
    base.log_every = 10
    base.plots = False
    config.grid = ml_collections.ConfigDict()
    config.grid.finetune = ml_collections.ConfigDict()
    config.grid.finetune.learning_rate = (0.01, 1e4)
    config.num_seeds = 6
    config.seeds_per_chunk = 3
  elif variant not in (None, '', 'full'):
    raise ValueError(f'Unknown variant {variant!r} of runs/sweep_example.py; valid: full, tiny.')
  return config

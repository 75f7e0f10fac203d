r"""The synthetic linear-regression experiment of Lee, Sohn and Lee (2026).

Reproduces "Fine-Tuning Without Forgetting In-Context Learning: A Theoretical Analysis of
Linear Attention Models" (arXiv 2602.23197), synthetic experiment: pretrain a one-layer
linear attention model on random unit tasks in d = 5, fine-tune it on one task theta0 under
each regime (all parameters, W_V only, W_KQ only; zero-shot loss with and without the
decaying few-shot loss), and measure the test error against the number of shots on theta0,
-theta0 and fresh sphere tasks.

Full protocol:

  python -m lafit --config=runs/paper.py --workdir=/tmp/lafit_paper

Quick variant (500 pretraining and 500 fine-tuning steps per regime, all else unchanged):

  python -m lafit --config=runs/paper.py:quick --workdir=/tmp/lafit_quick

Measured wall time of the whole command on a 2-core x86-64 CPU machine without GPU (jax
0.10.2, median of 5 runs, figures off, benchmarks/run_benchmarks.py): full 32 s and quick
18 s, each including 9 to 10 s of compilation. With the compilation cache of an earlier
run, full 23 s and quick 7 s. Writing the figures adds about 2 s. The full run's
pretrained model has test error 0.3455 at n = 20 on sphere tasks, against the exact
optimum 0.345283.
"""

import ml_collections


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  """Returns the reference configuration, or a named variant of it (`quick`)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # Data
  config.d = 5
  config.x_std = 1.0
  config.noise_std = 0.1 ** 0.5  # sigma^2 = 0.1.

  # Model
  config.parameterization = 'merged'  # merged (W_KQ, W_V) or separate (W_K, W_Q, W_V).
  config.num_layers = 1
  config.num_heads = 1
  config.init_std = 0.05

  # Optimizer: shared by pretraining and every fine-tuning regime.
  config.optimizer = 'sgd'  # sgd or adam.
  config.momentum = 0.9
  config.adam_b1 = 0.9
  config.adam_b2 = 0.9
  config.clip_norm = 1.0  # Global norm over the trainable parameters; 0 turns clipping off.

  # Pretraining: a fresh sphere task for every prompt.
  config.pretrain = ml_collections.ConfigDict()
  config.pretrain.n_shots = 20
  config.pretrain.batch_size = 5000
  config.pretrain.num_steps = 5000
  config.pretrain.learning_rate = 0.01
  # 0: the model is the last iterate (the reference). K > 0: the mean of the iterates after
  # each of the last K steps, which removes most of the SGD noise of the last iterate.
  config.pretrain.average_steps = 0
  # tokens: sample every token. gram: sample each prompt's context Gram matrix, which has
  # the same distribution, costs 2 times less per step here and needs one layer.
  # auto: gram for one-layer models, tokens otherwise.
  config.pretrain.sampler = 'auto'

  # Fine-tuning on theta0; every regime starts from the pretrained model with a fresh
  # optimizer state and is trained on the same batches.
  config.finetune = ml_collections.ConfigDict()
  config.finetune.n_shots = 20
  config.finetune.batch_size = 5000
  config.finetune.num_steps = 5000
  config.finetune.learning_rate = 0.01
  config.finetune.average_steps = 0  # As pretrain.average_steps.
  config.finetune.dataset_size = 100_000  # Pairs drawn with replacement; 0 for fresh data.
  config.finetune.losses = ('zs', 'zsfs')
  config.finetune.trainable = ('all', 'v', 'kq')  # Merged; separate also allows k and q.
  config.finetune.fs_weight_schedule = 'linear_decay'  # linear_decay (1 -> 0) or constant.
  config.finetune.fs_weight = 1.0  # The constant lambda when the schedule is constant.

  # Evaluation
  config.eval = ml_collections.ConfigDict()
  config.eval.n_max = 40
  config.eval.tasks = ('theta0', 'neg_theta0', 'sphere')
  # both: the exact risk (reported as test_error) and a Monte Carlo estimate beside it;
  # auto: exact for one layer and one head, else Monte Carlo; or exact, monte_carlo.
  config.eval.method = 'both'
  config.eval.num_prompts = 50_000  # Monte Carlo prompts per test seed.
  config.eval.num_seeds = 5  # Monte Carlo test seeds.
  config.eval.chunk_size = 10_000
  # Theory curves beside the learned ones (one layer and one head): closed-form optima
  # where they exist, and training on the exact population objective for every model.
  config.eval.theory = True

  # Logging and outputs
  config.trace_stride = 10  # Steps averaged into one point of the loss trace.
  config.log_every = 500  # Steps between progress lines.
  config.plots = True

  if variant == 'quick':
    config.pretrain.num_steps = 500
    config.finetune.num_steps = 500
  elif variant not in (None, '', 'full'):
    raise ValueError(f'Unknown variant {variant!r} of runs/paper.py; valid: full, quick.')
  return config

"""The reference experiment end to end: pretrain, fine-tune under every regime, evaluate.

`run(config, workdir)` writes into `workdir`:

- `config.json`: the configuration;
- `models/<model>.npz`: the learned parameters, loss trace and first non-finite step of
  each model, written as soon as the model is trained (the fine-tuned models together, at
  the end of their joint run). A re-run with the same config reuses them, so an
  interrupted run loses no finished model;
- `results.json`, `results.md`: test error against shots for each model and task;
  `results.json` is the same file on every re-run of the same config on one machine;
- `timing.json`: the wall time of the run and of each phase (pretraining, fine-tuning,
  population training, evaluation, writing outputs), compilation included; a phase whose
  models were reused takes almost no time;
- `figures/*.png`: test-error curves, training losses and parameter heatmaps.

A model is named `pretrained` or `<loss>_<trainable>` (`zs_v`, `zsfs_all`, ...).
"""

import dataclasses
import functools
import os
import time
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from lafit import claims
from lafit import config as config_lib
from lafit import data as data_lib
from lafit import evaluate
from lafit import io
from lafit import losses
from lafit import model as model_lib
from lafit import population
from lafit import regimes
from lafit import sufficient
from lafit import theory
from lafit import train as train_lib

PRETRAINED = 'pretrained'


@dataclasses.dataclass
class TrainedModel:
  """A trained model with its loss trace; `nonfinite_step` is -1 unless it diverged."""

  params: model_lib.Params
  loss_trace: np.ndarray
  trace_steps: np.ndarray
  nonfinite_step: int

  @property
  def diverged(self) -> bool:
    return self.nonfinite_step >= 0


def regime_names(config: ml_collections.ConfigDict) -> list[tuple[str, str, str]]:
  """Returns `(model name, loss, trainable)` for every fine-tuning regime of `config`."""
  return [(f'{loss}_{trainable}', loss, trainable)
          for loss in config.finetune.losses for trainable in config.finetune.trainable]


def make_optimizer(config: ml_collections.ConfigDict, learning_rate: float,
                   mask: regimes.Mask | None):
  return regimes.make_optimizer(
      config.optimizer, learning_rate, momentum=config.momentum, b1=config.adam_b1,
      b2=config.adam_b2, clip_norm=config.clip_norm or None, mask=mask)


def pretrain_sampler(config: ml_collections.ConfigDict) -> str:
  """Resolves `config.pretrain.sampler`: `auto` is `gram` for one layer, else `tokens`."""
  if config.pretrain.sampler == 'auto':
    return 'gram' if config.num_layers == 1 else 'tokens'
  return config.pretrain.sampler


def pretrain_trainer(config: ml_collections.ConfigDict) -> train_lib.Trainer:
  """Builds pretraining: every parameter, the few-shot loss, a fresh sphere task per prompt.

  `config.pretrain.sampler` picks the batches: `tokens` samples every token, `gram`
  samples each prompt's context Gram matrix directly (one-layer models only), and `auto`
  takes `gram` where it applies. Both give the same distribution of losses and gradients,
  but not the same values for a seed.
  """
  phase = config.pretrain
  sample_prompts = (sufficient.sample_gram_prompts if pretrain_sampler(config) == 'gram'
                    else data_lib.sample_prompts)

  def sample_batch(batch_key, step):
    del step
    key_tasks, key_prompts = jax.random.split(batch_key)
    theta_Bxd = data_lib.sample_sphere(key_tasks, (phase.batch_size,), config.d)
    return sample_prompts(key_prompts, theta_Bxd, phase.n_shots, x_std=config.x_std,
                          noise_std=config.noise_std)

  return train_lib.Trainer(loss_fn=losses.make_loss_fn('fs'), sample_batch=sample_batch,
                           optimizer=make_optimizer(config, phase.learning_rate, None))


def pretrain(config: ml_collections.ConfigDict, params: model_lib.Params,
             key: jax.Array) -> TrainedModel:
  """Trains every parameter with the few-shot loss on a fresh sphere task per prompt."""
  return _train(config, pretrain_trainer(config), params, key, config.pretrain.num_steps,
                PRETRAINED, average_steps=config.pretrain.average_steps)


def finetune_sampler(config: ml_collections.ConfigDict, theta0: jax.Array,
                     dataset: data_lib.Dataset | None, *, reduce_to_gram: bool = True):
  """Returns `sample(key, step) -> prompts` of the task `theta0`.

  A one-layer model reads a prompt only through its query and context Gram matrix. So for
  one layer (and `reduce_to_gram`) the sampled tokens are reduced to
  `sufficient.GramPrompts` once per batch, and every regime that shares the batch works on
  the small Gram matrices. The batches are the same either way, up to float rounding.
  """
  phase = config.finetune
  reduce = reduce_to_gram and config.num_layers == 1
  if reduce and dataset is not None:
    tokens_MxD = data_lib.dataset_tokens(dataset)
    return lambda batch_key, step: sufficient.sample_gram_prompts_from_dataset(
        batch_key, tokens_MxD, phase.batch_size, phase.n_shots)

  def sample_batch(batch_key, step):
    del step
    if dataset is None:
      theta_Bxd = jnp.broadcast_to(theta0, (phase.batch_size, config.d))
      prompts = data_lib.sample_prompts(batch_key, theta_Bxd, phase.n_shots,
                                        x_std=config.x_std, noise_std=config.noise_std)
    else:
      prompts = data_lib.sample_prompts_from_dataset(batch_key, dataset, phase.batch_size,
                                                     phase.n_shots)
    if reduce:
      return sufficient.gram_from_tokens(prompts)
    return prompts

  return sample_batch


def _fs_weight(config: ml_collections.ConfigDict):
  phase = config.finetune
  return 'linear_decay' if phase.fs_weight_schedule == 'linear_decay' else phase.fs_weight


def _mask(config: ml_collections.ConfigDict, trainable: str) -> regimes.Mask:
  leaf_names = regimes.TRAINABLE[config.parameterization]['all']
  return regimes.trainable_mask(dict.fromkeys(leaf_names), trainable)


def finetune_trainer(config: ml_collections.ConfigDict, loss: str, trainable: str,
                     sample_batch) -> train_lib.Trainer:
  """Builds fine-tuning under one regime; `sample_batch` comes from `finetune_sampler`."""
  phase = config.finetune
  mask = _mask(config, trainable)
  return train_lib.Trainer(
      loss_fn=losses.make_loss_fn(loss, phase.num_steps, _fs_weight(config)),
      sample_batch=sample_batch, optimizer=make_optimizer(config, phase.learning_rate, mask),
      mask=mask)


def finetune(config: ml_collections.ConfigDict, params: model_lib.Params, sample_batch,
             loss: str, trainable: str, key: jax.Array, name: str) -> TrainedModel:
  """Fine-tunes `params` under one regime with a fresh optimizer state."""
  trainer = finetune_trainer(config, loss, trainable, sample_batch)
  return _train(config, trainer, params, key, config.finetune.num_steps, name,
                average_steps=config.finetune.average_steps)


def joint_finetune_trainer(config: ml_collections.ConfigDict, regime_list, sample_batch,
                           *, population_theta0: jax.Array | None = None
                           ) -> train_lib.JointTrainer:
  """Builds fine-tuning under several regimes at once, on shared batches.

  Args:
    config: the experiment's configuration.
    regime_list: `(model name, loss, trainable)` triples, as from `regime_names`.
    sample_batch: from `finetune_sampler`; ignored for population training.
    population_theta0: if given, train on the exact population risk of this task instead
      of sampled batches (the infinite-data limit of each regime).
  """
  phase = config.finetune
  loss_kinds = [loss for _, loss, _ in regime_list]
  fs_coef_R = losses.few_shot_coefficients(loss_kinds)
  few_shot = 'zsfs' in loss_kinds
  if population_theta0 is None:
    # The zero-shot regimes get a loss without the few-shot term, which they weight by 0.
    # The population objective keeps one loss for all regimes: two groups compiled 1.6
    # times slower and did not run faster.
    loss_by_kind = {
        kind: losses.make_joint_loss_fn(phase.num_steps, _fs_weight(config),
                                         few_shot=kind == 'zsfs')
        for kind in set(loss_kinds)}
    loss_fn = tuple(loss_by_kind[kind] for kind in loss_kinds)
  else:
    loss_fn = population.make_joint_loss_fn(
        n=phase.n_shots, theta=population_theta0, noise_std=config.noise_std,
        x_std=config.x_std, num_steps=phase.num_steps, fs_weight=_fs_weight(config),
        few_shot=few_shot)
    sample_batch = population.no_batch
  masks = regimes.stack_masks([_mask(config, trainable) for _, _, trainable in regime_list])
  return train_lib.JointTrainer(
      loss_fn=loss_fn, sample_batch=sample_batch,
      optimizer=make_optimizer(config, phase.learning_rate, None), masks=masks,
      loss_args=fs_coef_R, names=tuple(name for name, _, _ in regime_list))


def finetune_all(config: ml_collections.ConfigDict, params: model_lib.Params, regime_list,
                 sample_batch, key: jax.Array, *, population_theta0: jax.Array | None = None,
                 name: str = 'finetune') -> dict[str, TrainedModel]:
  """Fine-tunes `params` under every regime of `regime_list` in one compiled run.

  Every regime starts from `params` with a fresh optimizer state and is trained on the
  same batch at each step. Returns the trained model of each regime, by name.
  """
  trainer = joint_finetune_trainer(config, regime_list, sample_batch,
                                   population_theta0=population_theta0)
  # Population training is deterministic gradient descent: it needs no averaging.
  average_steps = config.finetune.average_steps if population_theta0 is None else 0
  result = train_lib.train(trainer, params, key, config.finetune.num_steps,
                           trace_stride=config.trace_stride, log_every=config.log_every,
                           name=name, seeds=np.array([config.seed]),
                           average_steps=average_steps)
  params_R = jax.device_get(result.params)
  return {regime: TrainedModel(params={k: v[r] for k, v in params_R.items()},
                               loss_trace=result.loss_trace[r], trace_steps=result.trace_steps,
                               nonfinite_step=int(result.nonfinite_step[r]))
          for r, (regime, _, _) in enumerate(regime_list)}


def _train(config, trainer, params, key, num_steps, name, average_steps=0,
           fast_compile=False) -> TrainedModel:
  result = train_lib.train(trainer, params, key, num_steps, trace_stride=config.trace_stride,
                           log_every=config.log_every, name=name, seeds=np.array([config.seed]),
                           average_steps=average_steps, fast_compile=fast_compile)
  return TrainedModel(params=jax.device_get(result.params), loss_trace=result.loss_trace,
                      trace_steps=result.trace_steps,
                      nonfinite_step=int(result.nonfinite_step))


def _save_model(path: str, model: TrainedModel) -> None:
  arrays = {f'params/{k}': v for k, v in model.params.items()}
  arrays.update(loss_trace=model.loss_trace, trace_steps=model.trace_steps,
                nonfinite_step=np.asarray(model.nonfinite_step))
  io.write_npz(path, arrays)


def _load_model(path: str) -> TrainedModel:
  arrays = io.read_npz(path)
  params = {k.split('/', 1)[1]: jnp.asarray(v) for k, v in arrays.items()
            if k.startswith('params/')}
  return TrainedModel(params=params, loss_trace=arrays['loss_trace'],
                      trace_steps=arrays['trace_steps'],
                      nonfinite_step=int(arrays['nonfinite_step']))


def _trained(workdir: str, name: str, train_fn) -> TrainedModel:
  """Loads model `name` from `workdir` if an earlier run finished it, else trains it."""
  return _trained_all(workdir, [name], lambda: {name: train_fn()})[name]


def _trained_all(workdir: str, names: list[str], train_fn) -> dict[str, TrainedModel]:
  """Loads the models `names` from `workdir`, or trains them together with `train_fn()`.

  If any model is missing, the joint run is repeated whole, because a smaller joint run
  would round differently. So a model is the same whichever of its companions an earlier
  run finished. Finished models are kept as saved.
  """
  paths = {name: os.path.join(workdir, 'models', f'{name}.npz') for name in names}
  missing = [name for name in names if not os.path.exists(paths[name])]
  trained = train_fn() if missing else {}
  models = {}
  for name in names:
    if name in missing:
      _save_model(paths[name], trained[name])
      models[name] = trained[name]
    else:
      logging.info('%s: reusing the finished model in %s.', name, paths[name])
      models[name] = _load_model(paths[name])
  return models


def population_pretrain(config, params, name: str):
  """Pretrains on the exact risk averaged over sphere tasks."""
  phase = config.pretrain
  trainer = population.make_trainer(
      'fs', make_optimizer(config, phase.learning_rate, None), n=phase.n_shots, theta=None,
      noise_std=config.noise_std, x_std=config.x_std)
  # Its steps take about 0.07 ms each, less in all than their compilation.
  return _train(config, trainer, params, jax.random.PRNGKey(0), phase.num_steps, name,
                fast_compile=True)


def closed_form_models(config, model_names, theta0) -> dict[str, model_lib.Params]:
  """Returns the closed-form optimum of each model that has one.

  `pretrained` gets `c* I`, `zs_v` the value row `a* theta0`, and `zsfs_v` that row with
  `W_V[-1, -1] = w*(n_ft)`; all use the pretrained scale `q = c*` with `W_V[-1, -1] = 1`.
  The other regimes have no closed form here (full zero-shot fine-tuning has a whole family
  of minimizers), so their theory curves come from population training.
  """
  c_star = theory.pretrained_scale(config.d, config.pretrain.n_shots,
                                   noise_std=config.noise_std, x_std=config.x_std)
  params = {PRETRAINED: theory.pretrained_optimum(
      config.d, config.pretrain.n_shots, noise_std=config.noise_std, x_std=config.x_std)}
  if 'zs_v' in model_names:
    params['zs_v'] = theory.value_only_zero_shot(theta0, q=c_star, w=1.0, x_std=config.x_std)
  few_shot_weighted = (config.finetune.fs_weight_schedule == 'linear_decay'
                       or config.finetune.fs_weight > 0)
  if 'zsfs_v' in model_names and few_shot_weighted:
    params['zsfs_v'] = theory.value_only_few_shot(
        theta0, config.finetune.n_shots, q=c_star, noise_std=config.noise_std,
        x_std=config.x_std)
  return params


def build_theory_models(config, workdir, models, init, theta0) -> dict[str, dict]:
  """Returns, per model, the parameters of its theory curve and their sources."""
  closed = jax.jit(functools.partial(closed_form_models, config, list(models)))(theta0)
  population_models = {}
  if not models[PRETRAINED].diverged:
    population_models[PRETRAINED] = _trained(
        workdir, f'population_{PRETRAINED}',
        lambda: population_pretrain(config, init, f'population_{PRETRAINED}'))
  regime_list = [(f'population_{name}', loss, trainable)
                 for name, loss, trainable in regime_names(config)
                 if name in models and not models[name].diverged]

  def train_population():
    return finetune_all(config, models[PRETRAINED].params, regime_list, None,
                        jax.random.PRNGKey(0), population_theta0=theta0,
                        name='population_finetune')

  trained = _trained_all(workdir, [regime[0] for regime in regime_list], train_population)
  population_models.update({name.removeprefix('population_'): model
                            for name, model in trained.items()})

  theory_models = {}
  for name, model in models.items():
    if model.diverged:
      continue
    entry = {}
    if name in population_models and not population_models[name].diverged:
      entry['population'] = population_models[name].params
    if name in closed:
      entry['closed_form'] = closed[name]
    theory_models[name] = entry
  return theory_models


def theory_params(theory_models: dict[str, dict]) -> dict[str, model_lib.Params]:
  """Flattens `build_theory_models`'s entries to `{f'{source}/{model}': params}`."""
  return {f'{source}/{name}': params for name, entry in theory_models.items()
          for source, params in entry.items()}


def add_theory_results(results, theory_models, curves) -> None:
  """Adds theory and population curves, and the largest learned-to-theory gaps.

  `curves` contains the exact test error of each parameter set of `theory_params`.
  """
  results['theory_error'] = {}
  results['theory_source'] = {}
  results['population_error'] = {}
  results['theory_gap'] = {}
  for name, entry in theory_models.items():
    if 'population' in entry:
      results['population_error'][name] = _curve_lists(curves[f'population/{name}'])
    source = 'closed_form' if 'closed_form' in entry else 'population'
    if source not in entry:
      continue
    results['theory_error'][name] = _curve_lists(curves[f'{source}/{name}'])
    results['theory_source'][name] = source
    results['theory_gap'][name] = theory_gap(results['test_error'][name],
                                             results['theory_error'][name])


def _curve_lists(curves: dict[str, np.ndarray]) -> dict[str, list[float]]:
  return {task: curve.tolist() for task, curve in curves.items()}


def theory_gap(learned: dict, theory_curves: dict) -> dict:
  """Returns the largest relative gap `|learned - theory| / theory` over tasks and `n`."""
  gaps = {'all_n': 0.0, 'n_ge_5': 0.0}
  for task, curve in learned.items():
    relative = np.abs(np.asarray(curve) - np.asarray(theory_curves[task]))
    relative = relative / np.asarray(theory_curves[task])
    gaps['all_n'] = max(gaps['all_n'], float(relative.max()))
    if relative.size > 5:
      gaps['n_ge_5'] = max(gaps['n_ge_5'], float(relative[5:].max()))
  return gaps


def theory_summary(results: dict) -> str:
  """Formats each model's largest gap between its learned and theory curves."""
  lines = []
  for name, gap in results.get('theory_gap', {}).items():
    lines.append(f'{name}: largest relative gap to its theory curve '
                 f'({results["theory_source"][name]}): {gap["all_n"]:.3%} over all n, '
                 f'{gap["n_ge_5"]:.3%} for n >= 5.')
  return '\n'.join(lines)


def eval_method(config: ml_collections.ConfigDict) -> str:
  """Resolves the evaluation method for the model of `config`.

  `auto` becomes `exact` for one-layer one-head models and `monte_carlo` otherwise, and
  `both` becomes `monte_carlo` where no closed form applies.
  """
  one_layer_one_head = (config.num_layers, config.num_heads) == (1, 1)
  if config.eval.method == 'auto':
    return 'exact' if one_layer_one_head else 'monte_carlo'
  if config.eval.method == 'both' and not one_layer_one_head:
    return 'monte_carlo'
  return config.eval.method


def eval_task_theta(task: str, theta0: jax.Array) -> jax.Array | None:
  """Returns the fixed task of an evaluation task name, or `None` for the sphere average."""
  return {'theta0': theta0, 'neg_theta0': -theta0, 'sphere': None}[task]


def _exact_curves(params, theta0, noise_std, x_std, *, tasks, n_max):
  """Returns the exact risk of `params` on each task at n = 0..n_max, compiled."""
  return _compiled_exact_curves()(params, theta0, noise_std, x_std, tasks=tasks, n_max=n_max)


@functools.cache
def _compiled_exact_curves():
  # A call runs for well under a millisecond, so compiling fast saves more than it costs.
  return jax.jit(_exact_risk_curves, static_argnames=('tasks', 'n_max'),
                 compiler_options=train_lib.compiler_options(fast_compile=True))


def _exact_risk_curves(params, theta0, noise_std, x_std, *, tasks, n_max):
  n_shots = jnp.arange(n_max + 1)

  def curve(theta):
    return jax.vmap(lambda n: theory.population_risk_of_params(
        params, n, noise_std=noise_std, x_std=x_std, theta=theta))(n_shots)

  return {task: curve(eval_task_theta(task, theta0)) for task in tasks}


def exact_curves(config, params_by_name: dict[str, model_lib.Params], theta0
                 ) -> dict[str, dict[str, np.ndarray]]:
  """Returns the exact test error of each model on each evaluation task at n = 0..n_max.

  One compiled program serves every model of the same parameter shapes. A stack of all
  models in one call compiled slower than the calls it saved.
  """
  curves = {}
  for name, params in params_by_name.items():
    curves[name] = jax.device_get(_exact_curves(
        params, theta0, config.noise_std, config.x_std, tasks=tuple(config.eval.tasks),
        n_max=config.eval.n_max))
  return curves


@functools.partial(jax.jit, static_argnames=('tasks', 'n_max', 'num_prompts', 'chunk_size'))
def _monte_carlo_curves(params_M, key, theta0, x_std, noise_std, *, tasks, n_max, num_prompts,
                        chunk_size):
  """Scores a stack of models on each task's prompts; one compilation serves every task."""
  curves = {}
  for index, task in enumerate(tasks):
    curves[task] = evaluate.monte_carlo_test_error(
        params_M, jax.random.fold_in(key, index), data_lib.task_sampler(task, theta0),
        n_max=n_max, num_prompts=num_prompts, x_std=x_std, noise_std=noise_std,
        chunk_size=chunk_size)
  return curves


def monte_carlo_curves(config, params_by_model: dict[str, model_lib.Params], theta0, key
                       ) -> dict[str, dict[str, evaluate.ErrorCurve]]:
  """Returns the Monte Carlo test error and standard error of each model on each task.

  All models are scored on the same prompts (common random numbers), sampled once.
  """
  names = list(params_by_model)
  if not names:
    return {}
  params_M = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves),
                                    *[params_by_model[name] for name in names])
  curves = _monte_carlo_curves(
      params_M, key, theta0, config.x_std, config.noise_std, tasks=tuple(config.eval.tasks),
      n_max=config.eval.n_max, num_prompts=config.eval.num_prompts * config.eval.num_seeds,
      chunk_size=config.eval.chunk_size)
  curves = jax.device_get(curves)
  return {name: {task: evaluate.ErrorCurve(curve.mean[m], curve.stderr[m])
                 for task, curve in curves.items()}
          for m, name in enumerate(names)}


# Fields that change only evaluation or outputs: a finished run may be re-evaluated with
# other values of these, reusing its trained models.
_EVALUATION_FIELDS = ('eval', 'plots', 'log_every')


def _training_fields(config_dict: dict) -> dict:
  return {k: v for k, v in io.to_jsonable(config_dict).items() if k not in _EVALUATION_FIELDS}


def check_workdir(workdir: str, config_dict: dict) -> None:
  """Rejects a workdir that contains a sweep, or models trained under another config."""
  if os.path.exists(os.path.join(workdir, 'sweep.json')):
    raise ValueError(f'--workdir={workdir} contains a sweep (sweep.json): choose another '
                     '--workdir for a single run.')
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return
  saved = _training_fields(io.read_json(path))
  requested = _training_fields(config_dict)
  if saved != requested:
    differing = io.differing_fields(saved, requested)
    raise ValueError(f'--workdir={workdir} holds a run of a different config ({path}; '
                     f'fields that differ: {", ".join(differing)}). Choose a new --workdir '
                     'or delete that one. Only eval.*, plots and log_every may differ from a '
                     'finished run.')


class RunInputs(NamedTuple):
  """The random draws of a run that do not depend on training."""
  init: model_lib.Params
  theta0: jax.Array
  dataset: data_lib.Dataset | None
  key_pretrain: jax.Array
  key_finetune: jax.Array
  key_eval: jax.Array


def draw_inputs(config: ml_collections.ConfigDict, root: jax.Array) -> RunInputs:
  """Draws the initial parameters, `theta0`, the fine-tuning dataset and the phase keys.

  Everything derives from the run's key `root`, `PRNGKey(config.seed)`. `run` compiles
  this into one call, because drawn op by op these arrays compiled about 30 small
  programs.
  """
  keys = jax.random.split(root, 6)
  key_init, key_pretrain, key_theta0, key_dataset, key_finetune, key_eval = keys
  init = model_lib.init_params(key_init, config.d, num_layers=config.num_layers,
                               num_heads=config.num_heads,
                               parameterization=config.parameterization,
                               init_std=config.init_std)
  theta0 = data_lib.sample_sphere(key_theta0, (), config.d)
  dataset = None
  if config.finetune.dataset_size > 0:
    dataset = data_lib.make_dataset(key_dataset, theta0, config.finetune.dataset_size,
                                    x_std=config.x_std, noise_std=config.noise_std)
  return RunInputs(init, theta0, dataset, key_pretrain, key_finetune, key_eval)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the experiment of `config` and writes its outputs to `workdir`."""
  config_lib.validate(config)
  config_dict = config.to_dict()
  check_workdir(workdir, config_dict)
  io.write_json(os.path.join(workdir, 'config.json'), config_dict)
  start_time = time.perf_counter()
  phase_times = {}
  phase_start = start_time

  def end_phase(phase):
    nonlocal phase_start
    now = time.perf_counter()
    phase_times[phase] = now - phase_start
    phase_start = now

  inputs = jax.jit(functools.partial(draw_inputs, config))(jax.random.PRNGKey(config.seed))
  init, theta0, dataset = inputs.init, inputs.theta0, inputs.dataset

  # Pretraining
  models = {PRETRAINED: _trained(workdir, PRETRAINED,
                                 lambda: pretrain(config, init, inputs.key_pretrain))}
  end_phase('pretrain_s')

  # Fine-tuning: one target task, and the same batches for every regime.
  sample_batch = finetune_sampler(config, theta0, dataset)
  pretrained = models[PRETRAINED]
  regime_list = regime_names(config)
  if pretrained.diverged:
    logging.warning('Fine-tuning skipped because pretraining diverged.')
  else:

    def train_regimes():
      return finetune_all(config, pretrained.params, regime_list, sample_batch,
                          inputs.key_finetune)

    models.update(_trained_all(workdir, [regime[0] for regime in regime_list], train_regimes))
  end_phase('finetune_s')

  # Theory: closed-form parameters and training on the exact population objective.
  theory_models = {}
  if config.eval.theory and eval_method(config) != 'monte_carlo':
    theory_models = build_theory_models(config, workdir, models, init, theta0)
  end_phase('population_s')

  # Evaluation
  logging.info('Evaluating %d models on %s (method: %s).', len(models),
               ', '.join(config.eval.tasks), config.eval.method)
  results = evaluate_models(config, models, theta0, inputs.key_eval, theory_models)
  results['claims'] = claims.check_all(results, models, config)
  end_phase('evaluate_s')
  write_outputs(config, workdir, results, models)
  end_phase('outputs_s')
  wall_time_s = time.perf_counter() - start_time
  io.write_json(os.path.join(workdir, 'timing.json'),
                {'wall_time_s': wall_time_s, 'phases': phase_times})
  logging.info('Finished in %.1f s; outputs are in %s.', wall_time_s, workdir)
  return results


def evaluate_models(config, models: dict[str, TrainedModel], theta0, key,
                    theory_models: dict[str, dict] | None = None) -> dict:
  """Evaluates every model on every task; diverged models get `None` curves.

  With `theory_models` (from `build_theory_models`), the results also get the theory and
  population curves and the gaps between learned and theory curves.
  """
  method = eval_method(config)
  n_shots = np.arange(config.eval.n_max + 1)
  results = {
      'n_shots': n_shots.tolist(),
      'tasks': list(config.eval.tasks),
      'models': list(models),
      'test_error_method': 'exact' if method in ('exact', 'both') else 'monte_carlo',
      'theta0': np.asarray(theta0).tolist(),
      'noise_var': config.noise_std ** 2,
      'zero_predictor_error': config.noise_std ** 2 + config.x_std ** 2,
      'test_error': {},
      'diverged': {},
      'final_train_loss': {},
  }
  if method in ('monte_carlo', 'both'):
    results['monte_carlo'] = {'test_error': {}, 'stderr': {}}

  finished = {}
  for name, model in models.items():
    if model.diverged:
      results['diverged'][name] = {'step': model.nonfinite_step, 'seed': config.seed}
      results['test_error'][name] = {task: None for task in config.eval.tasks}
      results['final_train_loss'][name] = None
      logging.warning('%s diverged at step %d (seed %d); its numbers are not reported.', name,
                      model.nonfinite_step, config.seed)
      continue
    finished[name] = model.params
    results['test_error'][name] = None  # Filled below, keeping the order of `models`.
    results['final_train_loss'][name] = float(model.loss_trace[-1])

  exact_params = dict(finished) if method in ('exact', 'both') else {}
  exact_params.update(theory_params(theory_models or {}))
  exact = exact_curves(config, exact_params, theta0)
  for name in finished:
    if method in ('exact', 'both'):
      results['test_error'][name] = _curve_lists(exact[name])
  if method in ('monte_carlo', 'both'):
    for name, mc_curves in monte_carlo_curves(config, finished, theta0, key).items():
      results['monte_carlo']['test_error'][name] = {
          t: c.mean.tolist() for t, c in mc_curves.items()}
      results['monte_carlo']['stderr'][name] = {
          t: c.stderr.tolist() for t, c in mc_curves.items()}
      if method == 'monte_carlo':
        results['test_error'][name] = results['monte_carlo']['test_error'][name]
  if theory_models:
    add_theory_results(results, theory_models, exact)
  return results


def results_table(results: dict) -> str:
  """Formats the test errors as a Markdown table: one row per `n`, one column per curve."""
  columns = [(model, task) for model in results['models'] for task in results['tasks']]
  header = '| n | ' + ' | '.join(f'{m} {t}' for m, t in columns) + ' |'
  lines = [header, '|' + '---:|' * (len(columns) + 1)]
  for i, n in enumerate(results['n_shots']):
    cells = []
    for model, task in columns:
      curve = results['test_error'][model][task]
      cells.append('diverged' if curve is None else f'{curve[i]:.6g}')
    lines.append(f'| {n} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def write_outputs(config, workdir: str, results: dict, models: dict[str, TrainedModel]) -> None:
  """Writes results, the table, loss traces and figures into `workdir`."""
  io.write_json(os.path.join(workdir, 'results.json'), results)
  io.write_text(os.path.join(workdir, 'results.md'), results_table(results))
  traces = {}
  for name, model in models.items():
    traces[f'{name}/loss'] = model.loss_trace
    traces[f'{name}/step'] = model.trace_steps
  io.write_npz(os.path.join(workdir, 'loss_traces.npz'), traces)
  if config.plots:
    from lafit import plots  # Imported here so that runs without figures skip matplotlib.
    plots.write_figures(os.path.join(workdir, 'figures'), results, models)

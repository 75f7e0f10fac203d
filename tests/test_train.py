"""The scan driver: seeds under vmap, segmenting, divergence, and learning the optimum."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lafit import data as data_lib
from lafit import losses
from lafit import model as model_lib
from lafit import regimes
from lafit import theory
from lafit import train as train_lib

D_FEATURES = 3


def sphere_sampler(batch_size=256, n=6, noise_std=0.3):
  def sample_batch(key, step):
    del step
    key_tasks, key_prompts = jax.random.split(key)
    theta = data_lib.sample_sphere(key_tasks, (batch_size,), D_FEATURES)
    return data_lib.sample_prompts(key_prompts, theta, n, x_std=1.0, noise_std=noise_std)
  return sample_batch


def make_trainer(learning_rate=0.05, clip_norm=1.0):
  return train_lib.Trainer(losses.make_loss_fn('fs'), sphere_sampler(),
                           regimes.make_optimizer('sgd', learning_rate, clip_norm=clip_norm))


def test_vmapped_seeds_equal_separate_runs():
  trainer = make_trainer()
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  inits = jax.vmap(lambda k: model_lib.init_params(k, D_FEATURES))(keys)
  batched = train_lib.train(trainer, inits, keys, 30, trace_stride=5, log_every=30)
  assert batched.loss_trace.shape == (3, 6)
  for s in range(3):
    init = jax.tree_util.tree_map(lambda a: a[s], inits)
    single = train_lib.train(trainer, init, keys[s], 30, trace_stride=5, log_every=30)
    for name in init:
      np.testing.assert_allclose(batched.params[name][s], single.params[name], rtol=1e-5,
                                 atol=1e-6)
    np.testing.assert_allclose(batched.loss_trace[s], single.loss_trace, rtol=1e-5)


def test_segments_do_not_change_results():
  trainer = make_trainer()
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES)
  whole = train_lib.train(trainer, params, jax.random.PRNGKey(2), 24, trace_stride=4,
                          log_every=24)
  pieces = train_lib.train(trainer, params, jax.random.PRNGKey(2), 24, trace_stride=4,
                           log_every=7)
  for name in params:
    np.testing.assert_array_equal(whole.params[name], pieces.params[name])
  np.testing.assert_array_equal(whole.loss_trace, pieces.loss_trace)
  np.testing.assert_array_equal(whole.trace_steps, [0, 4, 8, 12, 16, 20])


def test_train_steps_is_pure_and_jittable():
  trainer = make_trainer()
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES)
  state = trainer.init(params, jax.random.PRNGKey(3))
  run = jax.jit(trainer.train_steps, static_argnums=1)
  first, losses_a = run(state, 5)
  second, losses_b = run(state, 5)
  np.testing.assert_array_equal(losses_a, losses_b)
  assert int(first.step) == 5
  assert losses_a.shape == (5,)


def test_scan_equals_steps_one_by_one():
  # The scan draws each batch one iteration ahead, so its batches and updates must equal
  # those of `step`, which draws the batch in the same iteration as the update.
  trainer = make_trainer()
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES)
  state = trainer.init(params, jax.random.PRNGKey(3))
  scanned, scan_losses = jax.jit(trainer.train_steps, static_argnums=1)(state, 6)
  step = jax.jit(trainer.step)
  step_losses = []
  for _ in range(6):
    state, loss = step(state)
    step_losses.append(loss)
  np.testing.assert_allclose(scan_losses, step_losses, rtol=1e-6)
  for name in params:
    np.testing.assert_allclose(scanned.params[name], state.params[name], rtol=1e-6,
                               atol=1e-7)
  assert int(scanned.step) == int(state.step) == 6


@pytest.mark.parametrize('fast_compile', [False, True])
def test_compiler_options_keep_results(fast_compile):
  options = train_lib.compiler_options(fast_compile=fast_compile)
  if jax.default_backend() == 'cpu':
    assert options is not None
    assert ('xla_backend_optimization_level' in options) == fast_compile
  trainer = make_trainer()
  state = trainer.init(model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES),
                       jax.random.PRNGKey(3))
  with_options = jax.jit(trainer.train_steps, static_argnums=1, compiler_options=options)
  default = jax.jit(trainer.train_steps, static_argnums=1)
  np.testing.assert_allclose(with_options(state, 4)[1], default(state, 4)[1], rtol=1e-6)


def test_divergence_reported_with_step(caplog):
  trainer = make_trainer(learning_rate=1e4, clip_norm=None)
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES, init_std=1.0)
  result = train_lib.train(trainer, params, jax.random.PRNGKey(2), 200, log_every=50,
                           name='blowup')
  step = int(result.nonfinite_step)
  assert 0 <= step < 200
  assert not np.all(np.isfinite(result.loss_trace))
  assert any('diverged' in r.message and f'step {step}' in r.message for r in caplog.records)


def test_window_means():
  means, starts = train_lib.window_means(np.arange(7.0), 3)
  np.testing.assert_array_equal(means, [1.0, 4.0, 6.0])
  np.testing.assert_array_equal(starts, [0, 3, 6])


def test_bad_train_arguments_rejected():
  trainer = make_trainer()
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES)
  with pytest.raises(ValueError, match='num_steps must be >= 1, got 0'):
    train_lib.train(trainer, params, jax.random.PRNGKey(0), 0)
  with pytest.raises(ValueError, match='trace_stride'):
    train_lib.train(trainer, params, jax.random.PRNGKey(0), 5, trace_stride=0)


def test_pretraining_approaches_exact_optimum():
  # The target is the closed-form optimum of the sphere risk at n = 6.
  trainer = train_lib.Trainer(losses.make_loss_fn('fs'), sphere_sampler(batch_size=2000),
                              regimes.make_optimizer('sgd', 0.05))
  params = model_lib.init_params(jax.random.PRNGKey(4), D_FEATURES)
  result = train_lib.train(trainer, params, jax.random.PRNGKey(5), 400, log_every=400)
  learned = theory.population_risk_of_params(result.params, 6, noise_std=0.3, theta=None)
  optimum = theory.pretrained_optimum_risk(6, D_FEATURES, 6, noise_std=0.3)
  assert learned >= optimum - 1e-5
  # SGD noise at batch 2000 leaves the risk within about 1% of the optimum.
  assert learned < 1.02 * optimum


def fixed_task_sampler(theta, batch_size=128, n=5):
  def sample_batch(key, step):
    del step
    theta_Bxd = jnp.broadcast_to(theta, (batch_size, D_FEATURES))
    return data_lib.sample_prompts(key, theta_Bxd, n, x_std=1.0, noise_std=0.3)
  return sample_batch


REGIMES = (('zs_all', 'zs', 'all'), ('zsfs_v', 'zsfs', 'v'), ('zs_kq', 'zs', 'kq'),
           ('zsfs_all', 'zsfs', 'all'))


def joint_trainer(sample_batch, num_steps, optimizer, regime_list=REGIMES):
  leaves = dict.fromkeys(('W_KQ', 'W_V'))
  masks = regimes.stack_masks([regimes.trainable_mask(leaves, t) for _, _, t in regime_list])
  return train_lib.JointTrainer(
      losses.make_joint_loss_fn(num_steps), sample_batch, optimizer, masks,
      losses.few_shot_coefficients([loss for _, loss, _ in regime_list]),
      tuple(name for name, _, _ in regime_list))


@pytest.mark.parametrize('optimizer_name', ['sgd', 'adam'])
def test_joint_regimes_equal_separate_runs(optimizer_name):
  num_steps = 12
  theta = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  sample_batch = fixed_task_sampler(theta)
  params = model_lib.init_params(jax.random.PRNGKey(5), D_FEATURES, init_std=0.3)
  optimizer = regimes.make_optimizer(optimizer_name, 0.05, clip_norm=0.5)
  joint = train_lib.train(joint_trainer(sample_batch, num_steps, optimizer), params,
                          jax.random.PRNGKey(6), num_steps, trace_stride=3, log_every=5)
  assert joint.loss_trace.shape == (len(REGIMES), 4)
  for r, (_, loss, trainable) in enumerate(REGIMES):
    mask = regimes.trainable_mask(params, trainable)
    trainer = train_lib.Trainer(
        losses.make_loss_fn(loss, num_steps), sample_batch,
        regimes.make_optimizer(optimizer_name, 0.05, clip_norm=0.5, mask=mask), mask)
    single = train_lib.train(trainer, params, jax.random.PRNGKey(6), num_steps,
                             trace_stride=3, log_every=5)
    for name in params:
      if mask[name]:
        assert not np.array_equal(joint.params[name][r], params[name])
        np.testing.assert_allclose(joint.params[name][r], single.params[name], rtol=2e-5,
                                   atol=1e-6)
      else:
        np.testing.assert_array_equal(joint.params[name][r], params[name])
    np.testing.assert_allclose(joint.loss_trace[r], single.loss_trace, rtol=2e-5)


def test_loss_groups_equal_shared_loss():
  # Interleaved groups: the zero-shot regimes skip the few-shot term, and the outputs must
  # come back in regime order.
  num_steps = 8
  theta = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  params = model_lib.init_params(jax.random.PRNGKey(5), D_FEATURES, init_std=0.3)
  shared = joint_trainer(fixed_task_sampler(theta), num_steps, optax.sgd(0.05))
  by_kind = {'zs': losses.make_joint_loss_fn(num_steps, few_shot=False),
             'zsfs': losses.make_joint_loss_fn(num_steps)}
  grouped = dataclasses.replace(
      shared, loss_fn=tuple(by_kind[loss] for _, loss, _ in REGIMES))
  expected, expected_losses = shared.train_steps(shared.init(params, jax.random.PRNGKey(6)),
                                                 num_steps)
  actual, actual_losses = grouped.train_steps(grouped.init(params, jax.random.PRNGKey(6)),
                                              num_steps)
  np.testing.assert_allclose(actual_losses, expected_losses, rtol=1e-6)
  for name in params:
    np.testing.assert_allclose(actual.params[name], expected.params[name], rtol=1e-6,
                               atol=1e-7)
  with pytest.raises(ValueError, match='4 regimes .* but 2 loss functions'):
    dataclasses.replace(shared, loss_fn=(by_kind['zs'], by_kind['zsfs']))


def test_joint_divergence_names_regime(caplog):
  theta = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES, init_std=1.0)
  regime_list = (('zs_v', 'zs', 'v'), ('zsfs_all', 'zsfs', 'all'))
  trainer = joint_trainer(fixed_task_sampler(theta), 200,
                          regimes.make_optimizer('sgd', 1e4, clip_norm=None), regime_list)
  result = train_lib.train(trainer, params, jax.random.PRNGKey(2), 200, log_every=50,
                           name='blowup', seeds=np.array([7]))
  step = int(result.nonfinite_step[1])
  assert 0 <= step < 200
  assert any(f'step {step}, seed 7, regime zsfs_all' in r.message for r in caplog.records)


def test_joint_trainer_checks_regime_axis():
  theta = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  with pytest.raises(ValueError, match='4 regimes'):
    train_lib.JointTrainer(
        losses.make_joint_loss_fn(), fixed_task_sampler(theta), optax.sgd(0.1),
        {'W_KQ': jnp.ones((4,), bool), 'W_V': jnp.ones((3,), bool)}, jnp.zeros((4,)),
        ('a', 'b', 'c', 'd'))


@pytest.mark.parametrize('log_every', [4, 30])
def test_tail_average_is_mean_of_last_iterates(log_every):
  num_steps, average_steps = 12, 7
  theta = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  params = model_lib.init_params(jax.random.PRNGKey(5), D_FEATURES, init_std=0.3)
  mask = regimes.trainable_mask(params, 'v')
  trainer = train_lib.Trainer(losses.make_loss_fn('zsfs', num_steps), fixed_task_sampler(theta),
                              regimes.make_optimizer('sgd', 0.05, mask=mask), mask)
  result = train_lib.train(trainer, params, jax.random.PRNGKey(6), num_steps,
                           log_every=log_every, average_steps=average_steps)
  # Reference: step by step, averaging the last iterates in float64.
  state = trainer.init(params, jax.random.PRNGKey(6))
  iterates = []
  for _ in range(num_steps):
    state, _ = trainer.step(state)
    iterates.append(np.asarray(state.params['W_V'], np.float64))
  expected = np.mean(iterates[-average_steps:], axis=0)
  np.testing.assert_allclose(result.params['W_V'], expected, rtol=1e-5, atol=1e-7)
  assert not np.allclose(expected, iterates[-1], rtol=1e-3)
  np.testing.assert_array_equal(result.params['W_KQ'], params['W_KQ'])


def test_tail_average_of_joint_regimes_keeps_frozen_bits():
  num_steps = 10
  theta = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  params = model_lib.init_params(jax.random.PRNGKey(5), D_FEATURES, init_std=0.3)
  trainer = joint_trainer(fixed_task_sampler(theta), num_steps,
                          regimes.make_optimizer('sgd', 0.05))
  last = train_lib.train(trainer, params, jax.random.PRNGKey(6), num_steps)
  averaged = train_lib.train(trainer, params, jax.random.PRNGKey(6), num_steps,
                             average_steps=num_steps)
  np.testing.assert_array_equal(averaged.loss_trace, last.loss_trace)
  for r, (_, _, trainable) in enumerate(REGIMES):
    for name in params:
      if regimes.trainable_mask(params, trainable)[name]:
        assert not np.allclose(averaged.params[name][r], last.params[name][r], rtol=1e-4)
      else:
        np.testing.assert_array_equal(averaged.params[name][r], params[name])


def test_bad_average_steps_rejected():
  params = model_lib.init_params(jax.random.PRNGKey(1), D_FEATURES)
  with pytest.raises(ValueError, match=r'average_steps must be in \[0, num_steps=5\], got 6'):
    train_lib.train(make_trainer(), params, jax.random.PRNGKey(0), 5, average_steps=6)

"""Trainable masks, the optimizer chain, and frozen parameters staying bit-identical."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lafit import data as data_lib
from lafit import losses
from lafit import model as model_lib
from lafit import regimes
from lafit import train as train_lib


@pytest.mark.parametrize('parameterization,trainable,expected', [
    ('merged', 'all', {'W_KQ': True, 'W_V': True}),
    ('merged', 'v', {'W_KQ': False, 'W_V': True}),
    ('merged', 'kq', {'W_KQ': True, 'W_V': False}),
    ('separate', 'all', {'W_K': True, 'W_Q': True, 'W_V': True}),
    ('separate', 'v', {'W_K': False, 'W_Q': False, 'W_V': True}),
    ('separate', 'k', {'W_K': True, 'W_Q': False, 'W_V': False}),
    ('separate', 'q', {'W_K': False, 'W_Q': True, 'W_V': False}),
])
def test_trainable_mask(parameterization, trainable, expected):
  params = model_lib.init_params(jax.random.PRNGKey(0), 2, parameterization=parameterization)
  assert regimes.trainable_mask(params, trainable) == expected


def test_unknown_regime_rejected():
  params = model_lib.init_params(jax.random.PRNGKey(0), 2)
  with pytest.raises(ValueError, match="trainable='k'.*all, v, kq"):
    regimes.trainable_mask(params, 'k')
  with pytest.raises(ValueError, match='optimizer'):
    regimes.make_optimizer('lion', 0.1)


def test_clip_norm_counts_trainable_only():
  params = {'W_KQ': jnp.zeros((1, 1, 3, 3)), 'W_V': jnp.zeros((1, 1, 3, 3))}
  grads = {'W_KQ': jnp.full((1, 1, 3, 3), 100.0), 'W_V': jnp.full((1, 1, 3, 3), 0.1)}
  mask = {'W_KQ': False, 'W_V': True}
  optimizer = regimes.make_optimizer('sgd', 0.5, mask=mask)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  # The trainable norm is 0.3 < 1, so the gradient is not rescaled: the first SGD update
  # is -lr * g exactly. Counting the frozen gradient would have scaled it by ~1/300.
  np.testing.assert_allclose(updates['W_V'], -0.05, rtol=1e-6)
  np.testing.assert_array_equal(updates['W_KQ'], 0.0)


def test_clip_rescales_above_norm():
  params = {'W_KQ': jnp.zeros((1, 1, 2, 2)), 'W_V': jnp.zeros((1, 1, 2, 2))}
  grads = {'W_KQ': jnp.full((1, 1, 2, 2), 3.0), 'W_V': jnp.full((1, 1, 2, 2), 4.0)}
  optimizer = regimes.make_optimizer('sgd', 1.0, clip_norm=1.0)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)
  norm = optax.tree.norm(updates)
  np.testing.assert_allclose(norm, 1.0, rtol=1e-6)


def test_sgd_momentum_matches_hand_rolled():
  params = {'W_KQ': jnp.ones((1, 1, 2, 2)), 'W_V': jnp.ones((1, 1, 2, 2))}
  optimizer = regimes.make_optimizer('sgd', 0.1, momentum=0.9, clip_norm=None)
  state = optimizer.init(params)
  velocity = 0.0
  value = 1.0
  for g in (0.2, -0.1, 0.3):
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, g), params)
    updates, state = optimizer.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    velocity = 0.9 * velocity + g
    value = value - 0.1 * velocity
  np.testing.assert_allclose(params['W_V'], value, rtol=1e-6)


@pytest.mark.parametrize('optimizer_name', ['sgd', 'adam'])
@pytest.mark.parametrize('parameterization,trainable', [
    ('merged', 'v'), ('merged', 'kq'), ('separate', 'k'), ('separate', 'q'),
    ('separate', 'v')])
def test_frozen_parameters_bit_identical(optimizer_name, parameterization, trainable):
  d = 3
  params = model_lib.init_params(jax.random.PRNGKey(0), d, parameterization=parameterization,
                                 init_std=0.3)
  # A -0.0 entry would become +0.0 if a zero update were added to it.
  first = next(iter(params))
  params[first] = params[first].at[0, 0, 0, 0].set(-0.0)
  mask = regimes.trainable_mask(params, trainable)
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(1), (), d)

  def sample_batch(key, step):
    del step
    return data_lib.sample_prompts(key, jnp.tile(theta0, (64, 1)), 5, x_std=1.0, noise_std=0.1)

  trainer = train_lib.Trainer(losses.make_loss_fn('zsfs', 20), sample_batch,
                              regimes.make_optimizer(optimizer_name, 0.05, mask=mask), mask)
  result = train_lib.train(trainer, params, jax.random.PRNGKey(2), 20, log_every=20)
  for name, trained in mask.items():
    before = np.asarray(params[name])
    after = np.asarray(result.params[name])
    if trained:
      assert not np.array_equal(before, after), name
    else:
      assert before.tobytes() == after.tobytes(), name


def test_stacked_masks_select_inside_vmap():
  params = model_lib.init_params(jax.random.PRNGKey(0), 2)
  masks = regimes.stack_masks([regimes.trainable_mask(params, t) for t in ('v', 'kq', 'all')])
  np.testing.assert_array_equal(masks['W_V'], [True, False, True])
  np.testing.assert_array_equal(masks['W_KQ'], [False, True, True])
  updates = jax.tree_util.tree_map(jnp.ones_like, params)
  new = jax.vmap(regimes.apply_masked_updates, in_axes=(None, None, 0))(params, updates, masks)
  for r in range(3):
    for name in params:
      expected = params[name] + 1.0 if masks[name][r] else params[name]
      np.testing.assert_array_equal(new[name][r], expected)


def test_stack_masks_rejects_mismatch():
  with pytest.raises(ValueError, match='every mask must name'):
    regimes.stack_masks([{'W_KQ': True, 'W_V': False}, {'W_K': True, 'W_V': False}])

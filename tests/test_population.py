"""Training on the exact population objective reaches the closed-form optima."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lafit import data as data_lib
from lafit import model as model_lib
from lafit import population
from lafit import regimes
from lafit import theory
from lafit import train as train_lib

D_FEATURES = 3
NOISE_STD = 0.4


def run(trainer, params, num_steps):
  return train_lib.train(trainer, params, jax.random.PRNGKey(0), num_steps,
                         log_every=num_steps).params


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_population_pretraining_reaches_c_star(seed):
  # The reference size: d = 5, n = 20, sigma^2 = 0.1. For d = 2 or 3, some small random
  # initializations end at a worse stationary point instead (see lafit.population).
  d, n, noise_std = 5, 20, 0.1 ** 0.5
  trainer = population.make_trainer('fs', regimes.make_optimizer('sgd', 0.05), n=n, theta=None,
                                    noise_std=noise_std)
  params = run(trainer, model_lib.init_params(jax.random.PRNGKey(seed), d), 3000)
  risk = theory.population_risk_of_params(params, n, noise_std=noise_std)
  optimum = theory.pretrained_optimum_risk(n, d, n, noise_std=noise_std)
  np.testing.assert_allclose(risk, optimum, rtol=1e-4)
  # The learned product W_V[-1,-1] * W_KQ[x, x] is c* I up to the (V, Q) scale symmetry.
  product = params['W_V'][0, 0, -1, -1] * params['W_KQ'][0, 0, 1:-1, 1:-1]
  c_star = theory.pretrained_scale(d, n, noise_std=noise_std)
  np.testing.assert_allclose(product, c_star * np.eye(d), atol=5e-3)


def test_population_value_only_reaches_a_star():
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(2), (), D_FEATURES)
  c_star = float(theory.pretrained_scale(D_FEATURES, 8, noise_std=NOISE_STD))
  start = theory.pretrained_optimum(D_FEATURES, 8, noise_std=NOISE_STD)
  mask = regimes.trainable_mask(start, 'v')
  trainer = population.make_trainer('zs', regimes.make_optimizer('sgd', 0.01, mask=mask), mask,
                                    n=8, theta=theta0, noise_std=NOISE_STD)
  params = run(trainer, start, 2000)
  a_star = theory.value_only_zero_shot_scale(D_FEATURES, c_star)
  np.testing.assert_allclose(params['W_V'][0, 0, -1, 1:-1], a_star * theta0, atol=1e-4)
  zero_shot = theory.population_risk_of_params(params, 0, noise_std=NOISE_STD, theta=theta0)
  np.testing.assert_allclose(zero_shot, NOISE_STD ** 2 + 2 / (D_FEATURES + 4), rtol=1e-5)
  np.testing.assert_array_equal(params['W_KQ'], start['W_KQ'])


def test_population_mixed_value_only_reaches_w_star():
  n = 6
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(3), (), D_FEATURES)
  c_star = float(theory.pretrained_scale(D_FEATURES, n, noise_std=NOISE_STD))
  start = theory.pretrained_optimum(D_FEATURES, n, noise_std=NOISE_STD)
  mask = regimes.trainable_mask(start, 'v')
  # A constant weight keeps the few-shot term in force, so w*(n) is the exact minimizer of
  # W_V[-1, -1] once the value row sits at a* theta0.
  trainer = population.make_trainer('zsfs', regimes.make_optimizer('sgd', 0.01, mask=mask),
                                    mask, n=n, theta=theta0, noise_std=NOISE_STD,
                                    num_steps=4000, fs_weight=1.0)
  params = run(trainer, start, 4000)
  a = float(params['W_V'][0, 0, -1, 1:-1] @ theta0)
  w_star = theory.value_only_few_shot_weight(n, D_FEATURES, c_star, a, noise_std=NOISE_STD)
  np.testing.assert_allclose(params['W_V'][0, 0, -1, -1], w_star, rtol=1e-3)


def test_population_zero_shot_all_reaches_floor():
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(4), (), D_FEATURES)
  start = theory.pretrained_optimum(D_FEATURES, 8, noise_std=NOISE_STD)
  trainer = population.make_trainer('zs', regimes.make_optimizer('sgd', 0.01), n=8,
                                    theta=theta0, noise_std=NOISE_STD)
  params = run(trainer, start, 4000)
  zero_shot = theory.population_risk_of_params(params, 0, noise_std=NOISE_STD, theta=theta0)
  # The zero-shot floor is sigma^2; a few percent of the excess 1 + sigma^2 - sigma^2 remain.
  assert zero_shot < NOISE_STD ** 2 + 0.05


def test_population_rejects_unknown_loss():
  with pytest.raises(ValueError, match='loss kind'):
    population.make_loss_fn('mse', n=1, theta=None, noise_std=0.1)


def test_population_rejects_two_heads():
  params = model_lib.init_params(jax.random.PRNGKey(0), D_FEATURES, num_heads=2)
  loss = population.make_loss_fn('fs', n=2, theta=None, noise_std=0.1)
  with pytest.raises(ValueError, match='H = 2'):
    loss(params, None, jnp.zeros((), jnp.int32))


@pytest.mark.parametrize('kind', ['zs', 'zsfs'])
def test_population_joint_loss_matches_kind(kind):
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(3), (), D_FEATURES)
  params = model_lib.init_params(jax.random.PRNGKey(4), D_FEATURES, init_std=0.3)
  kwargs = dict(n=4, theta=theta0, noise_std=NOISE_STD, num_steps=10)
  joint = population.make_joint_loss_fn(**kwargs)
  single = population.make_loss_fn(kind, **kwargs)
  fs_coef = 1.0 if kind == 'zsfs' else 0.0
  for step in (0, 6):
    np.testing.assert_allclose(joint(params, None, step, fs_coef), single(params, None, step),
                               rtol=1e-6)


def test_mixed_risk_equals_two_risks():
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(5), (), D_FEATURES)
  params = model_lib.init_params(jax.random.PRNGKey(6), D_FEATURES, init_std=0.3)
  num_steps, step, n = 10, 4, 6
  mixed = population.make_loss_fn('zsfs', n=n, theta=theta0, noise_std=NOISE_STD,
                                  num_steps=num_steps)
  weight = (num_steps - 1 - step) / (num_steps - 1)  # The default linear decay.

  def reference(params):
    risk = lambda shots: theory.population_risk_of_params(params, shots, noise_std=NOISE_STD,
                                                          theta=theta0)
    return risk(0) + weight * risk(n)

  np.testing.assert_allclose(mixed(params, None, step), reference(params), rtol=1e-6)
  gradient = jax.grad(lambda p: mixed(p, None, step))(params)
  expected = jax.grad(reference)(params)
  for leaf in gradient:
    np.testing.assert_allclose(gradient[leaf], expected[leaf], rtol=1e-5, atol=1e-7)

"""Monte Carlo test error: every-n-at-once against per-n prompts, and against the exact risk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lafit import data as data_lib
from lafit import evaluate
from lafit import model as model_lib
from lafit import theory


@pytest.mark.parametrize('num_layers,num_heads', [(1, 1), (1, 2), (2, 2)])
def test_all_shots_match_truncated_prompts(num_layers, num_heads):
  d, n_max = 3, 5
  params = model_lib.init_params(jax.random.PRNGKey(0), d, num_layers=num_layers,
                                 num_heads=num_heads, init_std=0.3)
  theta = data_lib.sample_sphere(jax.random.PRNGKey(1), (7,), d)
  prompts = data_lib.sample_prompts(jax.random.PRNGKey(2), theta, n_max, x_std=1.0,
                                    noise_std=0.2)
  errors = evaluate.squared_errors_all_shots(params, prompts)
  assert errors.shape == (7, n_max + 1)
  for n in range(n_max + 1):
    z = jnp.concatenate([prompts.z_BxNxD[:, :n], prompts.z_BxNxD[:, -1:]], axis=1)
    yhat = model_lib.predict(params, z, method='full')
    np.testing.assert_allclose(errors[:, n], (yhat - prompts.y_B) ** 2, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize('task', ['theta0', 'neg_theta0', 'sphere'])
def test_monte_carlo_matches_exact_risk(task):
  d, n_max = 3, 8
  params = model_lib.init_params(jax.random.PRNGKey(3), d, init_std=0.4)
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(4), (), d)
  curve = evaluate.monte_carlo_test_error(
      params, jax.random.PRNGKey(5), data_lib.task_sampler(task, theta0), n_max=n_max,
      num_prompts=60_000, x_std=1.2, noise_std=0.4, chunk_size=25_000)
  theta = {'theta0': theta0, 'neg_theta0': -theta0, 'sphere': None}[task]
  exact = jnp.stack([theory.population_risk_of_params(params, n, noise_std=0.4, x_std=1.2,
                                                      theta=theta) for n in range(n_max + 1)])
  # Each n is an independent-enough estimate; 4.5 standard errors bound all 9 of them with
  # probability > 0.9999 under a normal approximation.
  z_scores = np.abs(np.asarray(curve.mean) - np.asarray(exact)) / np.asarray(curve.stderr)
  assert np.all(z_scores < 4.5), z_scores


def test_chunking_does_not_bias_count():
  d = 2
  params = model_lib.init_params(jax.random.PRNGKey(6), d, init_std=0.3)
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(7), (), d)
  sampler = data_lib.task_sampler('theta0', theta0)
  # 10 prompts in chunks of 4: the last chunk's 2 padding prompts must not count.
  chunked = evaluate.monte_carlo_test_error(params, jax.random.PRNGKey(8), sampler, n_max=2,
                                            num_prompts=10, x_std=1.0, noise_std=0.1,
                                            chunk_size=4)
  errors = []
  for index in range(3):
    key_tasks, key_prompts = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(8), index))
    prompts = data_lib.sample_prompts(key_prompts, sampler(key_tasks, 4), 2, x_std=1.0,
                                      noise_std=0.1)
    errors.append(evaluate.squared_errors_all_shots(params, prompts))
  expected = np.concatenate(errors)[:10].mean(axis=0)
  np.testing.assert_allclose(chunked.mean, expected, rtol=1e-5)


def test_monte_carlo_vmaps_over_seeds():
  d = 3
  keys = jax.random.split(jax.random.PRNGKey(9), 3)
  params = jax.vmap(lambda k: model_lib.init_params(k, d, init_std=0.3))(keys)
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(10), (), d)
  sampler = data_lib.task_sampler('sphere', theta0)

  def curve(p, key):
    return evaluate.monte_carlo_test_error(p, key, sampler, n_max=4, num_prompts=300,
                                           x_std=1.0, noise_std=0.2, chunk_size=100).mean

  batched = jax.jit(jax.vmap(curve))(params, keys)
  assert batched.shape == (3, 5)
  for s in range(3):
    single = curve(jax.tree_util.tree_map(lambda a: a[s], params), keys[s])
    np.testing.assert_allclose(batched[s], single, rtol=1e-5)


def test_stacked_models_share_prompts():
  # A stack of models is scored on the same prompts as each model alone with the same key.
  d = 3
  keys = jax.random.split(jax.random.PRNGKey(11), 2)
  one_layer = [model_lib.init_params(k, d, init_std=0.3) for k in keys]
  two_layer = [model_lib.init_params(k, d, num_layers=2, init_std=0.3) for k in keys]
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(12), (), d)
  sampler = data_lib.task_sampler('theta0', theta0)
  for models in (one_layer, two_layer):
    stack = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *models)
    kwargs = dict(n_max=3, num_prompts=250, x_std=1.0, noise_std=0.2, chunk_size=100)
    stacked = evaluate.monte_carlo_test_error(stack, keys[0], sampler, **kwargs)
    assert stacked.mean.shape == (2, 4)
    for m, params in enumerate(models):
      single = evaluate.monte_carlo_test_error(params, keys[0], sampler, **kwargs)
      np.testing.assert_allclose(stacked.mean[m], single.mean, rtol=1e-5)
      np.testing.assert_allclose(stacked.stderr[m], single.stderr, rtol=1e-4)

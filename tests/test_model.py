"""Forward passes against a naive full-attention implementation written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lafit import data as data_lib
from lafit import model as model_lib


def naive_forward(w_kq, w_v, z, num_tokens=None):
  """Loops over layers, heads and token pairs in float64 numpy; w_* are (L, H, D, D)."""
  z = np.array(z, dtype=np.float64)
  w_kq = np.asarray(w_kq, np.float64)
  w_v = np.asarray(w_v, np.float64)
  num_layers, num_heads = w_kq.shape[:2]
  n_tokens = z.shape[0] if num_tokens is None else num_tokens
  for layer in range(num_layers):
    update = np.zeros_like(z)
    for h in range(num_heads):
      for i in range(z.shape[0]):
        for j in range(z.shape[0]):
          score = z[i] @ w_kq[layer, h] @ z[j]
          update[i] += score * (w_v[layer, h] @ z[j])
    z = z + update / (num_heads * n_tokens)
  return z


def random_prompts(seed, batch_size=3, n=4, d=3):
  key_theta, key_prompts = jax.random.split(jax.random.PRNGKey(seed))
  theta = data_lib.sample_sphere(key_theta, (batch_size,), d)
  return data_lib.sample_prompts(key_prompts, theta, n, x_std=1.0, noise_std=0.3)


@pytest.mark.parametrize('num_layers,num_heads', [(1, 1), (1, 3), (2, 1), (3, 2)])
def test_forward_matches_naive(num_layers, num_heads):
  params = model_lib.init_params(jax.random.PRNGKey(1), 3, num_layers=num_layers,
                                 num_heads=num_heads, init_std=0.3)
  prompts = random_prompts(2)
  out = model_lib.forward(params, prompts.z_BxNxD)
  for b in range(prompts.z_BxNxD.shape[0]):
    expected = naive_forward(params['W_KQ'], params['W_V'], prompts.z_BxNxD[b])
    np.testing.assert_allclose(out[b], expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize('num_heads', [1, 2])
def test_query_row_path_matches_full(num_heads):
  params = model_lib.init_params(jax.random.PRNGKey(3), 3, num_heads=num_heads, init_std=0.3)
  prompts = random_prompts(4, batch_size=5, n=7)
  fast = model_lib.predict(params, prompts.z_BxNxD, method='query_row')
  full = model_lib.predict(params, prompts.z_BxNxD, method='full')
  naive = [naive_forward(params['W_KQ'], params['W_V'], z)[-1, -1] for z in prompts.z_BxNxD]
  np.testing.assert_allclose(fast, naive, rtol=2e-5, atol=2e-6)
  np.testing.assert_allclose(full, naive, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize('num_heads', [1, 2])
@pytest.mark.parametrize('forward_only', [False, True])
def test_token_terms_match_naive(num_heads, forward_only):
  params = model_lib.init_params(jax.random.PRNGKey(6), 3, num_heads=num_heads, init_std=0.3)
  z_BxNxD = random_prompts(7, batch_size=4, n=6).z_BxNxD
  terms = model_lib.one_layer_token_terms(params, z_BxNxD, forward_only=forward_only)
  w_kq = np.asarray(params['W_KQ'][0], np.float64)
  w_v = np.asarray(params['W_V'][0], np.float64)
  z = np.asarray(z_BxNxD, np.float64)
  expected = np.zeros(z.shape[:2])
  for b in range(z.shape[0]):
    for j in range(z.shape[1]):
      for h in range(num_heads):
        expected[b, j] += (z[b, -1] @ w_kq[h] @ z[b, j]) * (w_v[h, -1] @ z[b, j]) / num_heads
  np.testing.assert_allclose(terms, expected, rtol=2e-5, atol=2e-6)


def test_auto_method_picks_by_depth():
  prompts = random_prompts(5)
  one = model_lib.init_params(jax.random.PRNGKey(0), 3, init_std=0.3)
  np.testing.assert_array_equal(model_lib.predict(one, prompts.z_BxNxD),
                                model_lib.predict(one, prompts.z_BxNxD, method='query_row'))
  two = model_lib.init_params(jax.random.PRNGKey(0), 3, num_layers=2, init_std=0.3)
  np.testing.assert_array_equal(model_lib.predict(two, prompts.z_BxNxD),
                                model_lib.predict(two, prompts.z_BxNxD, method='full'))


@pytest.mark.parametrize('num_layers', [1, 2])
def test_separate_equals_merged(num_layers):
  params = model_lib.init_params(jax.random.PRNGKey(6), 3, num_layers=num_layers, num_heads=2,
                                 parameterization='separate', init_std=0.3)
  merged = {'W_KQ': jnp.swapaxes(params['W_Q'], -1, -2) @ params['W_K'], 'W_V': params['W_V']}
  prompts = random_prompts(7)
  np.testing.assert_allclose(model_lib.forward(params, prompts.z_BxNxD),
                             model_lib.forward(merged, prompts.z_BxNxD), rtol=1e-5, atol=1e-6)
  for method in ('full', 'auto'):
    np.testing.assert_allclose(model_lib.predict(params, prompts.z_BxNxD, method=method),
                               model_lib.predict(merged, prompts.z_BxNxD, method=method),
                               rtol=1e-5, atol=1e-6)
  expected_score = np.einsum('hij,hik->hjk', params['W_Q'][0], params['W_K'][0])
  np.testing.assert_allclose(model_lib.to_merged(params)['W_KQ'][0], expected_score,
                             rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('num_layers', [1, 2])
def test_zero_padding_equals_truncation(num_layers):
  params = model_lib.init_params(jax.random.PRNGKey(8), 3, num_layers=num_layers, num_heads=2,
                                 init_std=0.3)
  prompts = random_prompts(9, n=6)
  z = prompts.z_BxNxD
  short = jnp.concatenate([z[:, :2], z[:, -1:]], axis=1)
  padded = jnp.concatenate([z[:, :2], jnp.zeros_like(z[:, 2:-1]), z[:, -1:]], axis=1)
  np.testing.assert_allclose(
      model_lib.predict(params, padded, num_tokens=3, method='full'),
      model_lib.predict(params, short, method='full'), rtol=1e-5, atol=1e-6)


def test_init_is_reference_gaussian():
  params = model_lib.init_params(jax.random.PRNGKey(0), 5, num_layers=4, num_heads=8)
  entries = np.concatenate([np.ravel(v) for v in params.values()])
  assert params['W_KQ'].shape == (4, 8, 7, 7)
  # 3136 entries: the sample std is within 4% of 0.05 with probability > 0.999.
  assert abs(entries.std() - 0.05) < 0.002
  assert abs(entries.mean()) < 0.004


def test_bad_parameterization_rejected():
  with pytest.raises(ValueError, match='parameterization'):
    model_lib.init_params(jax.random.PRNGKey(0), 3, parameterization='tied')
  with pytest.raises(ValueError, match='method'):
    model_lib.predict(model_lib.init_params(jax.random.PRNGKey(0), 3),
                      random_prompts(0).z_BxNxD, method='fast')

"""Task samplers, prompt layout and dataset sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lafit import data as data_lib


def test_sphere_tasks_unit_and_isotropic():
  theta = data_lib.sample_sphere(jax.random.PRNGKey(0), (20_000,), 4)
  np.testing.assert_allclose(jnp.linalg.norm(theta, axis=-1), 1.0, rtol=1e-5)
  # E[theta theta^T] = I/d; each entry's sample mean has std <= 1/sqrt(20000 d) ~ 0.0035.
  np.testing.assert_allclose(theta.T @ theta / theta.shape[0], np.eye(4) / 4, atol=0.015)


@pytest.mark.parametrize('phi', [0.0, 0.7, np.pi / 2, np.pi])
def test_angle_tasks_have_angle(phi):
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(1), (), 5)
  sampler = data_lib.task_sampler('angle', theta0, phi)
  theta = sampler(jax.random.PRNGKey(2), 100)
  np.testing.assert_allclose(jnp.linalg.norm(theta, axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(theta @ theta0, np.cos(phi), atol=1e-5)


def test_fixed_task_samplers():
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(1), (), 3)
  key = jax.random.PRNGKey(0)
  np.testing.assert_array_equal(data_lib.task_sampler('theta0', theta0)(key, 4),
                                np.tile(theta0, (4, 1)))
  np.testing.assert_array_equal(data_lib.task_sampler('neg_theta0', theta0)(key, 4),
                                np.tile(-theta0, (4, 1)))
  assert data_lib.task_sampler('sphere', theta0)(key, 4).shape == (4, 3)
  with pytest.raises(ValueError, match='cube'):
    data_lib.task_sampler('cube', theta0)


def test_prompt_layout():
  theta = data_lib.sample_sphere(jax.random.PRNGKey(3), (2,), 3)
  prompts = data_lib.sample_prompts(jax.random.PRNGKey(4), theta, 5, x_std=2.0, noise_std=0.0)
  z = prompts.z_BxNxD
  assert z.shape == (2, 6, 5)
  np.testing.assert_array_equal(z[..., 0], 1.0)
  np.testing.assert_array_equal(z[:, -1, -1], 0.0)
  # Without noise every context label and the target are theta . x exactly (to rounding).
  np.testing.assert_allclose(z[:, :-1, -1], jnp.einsum('bnd,bd->bn', z[:, :-1, 1:-1], theta),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(prompts.y_B, jnp.einsum('bd,bd->b', z[:, -1, 1:-1], theta),
                             rtol=1e-5, atol=1e-6)


def test_prompt_statistics():
  theta = jnp.tile(jnp.array([0.6, 0.8]), (50_000, 1))
  prompts = data_lib.sample_prompts(jax.random.PRNGKey(5), theta, 3, x_std=1.5, noise_std=0.5)
  x = prompts.z_BxNxD[:, :-1, 1:-1].reshape(-1, 2)
  y = prompts.z_BxNxD[:, :-1, -1].reshape(-1)
  # 150k draws: the sample variance of x is within 2% of 2.25 with overwhelming probability.
  np.testing.assert_allclose(x.var(axis=0), 2.25, rtol=0.02)
  residual = y - x @ jnp.array([0.6, 0.8])
  np.testing.assert_allclose(residual.var(), 0.25, rtol=0.02)


def test_dataset_prompts_drawn_from_dataset():
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(6), (), 3)
  dataset = data_lib.make_dataset(jax.random.PRNGKey(7), theta0, 50, x_std=1.0, noise_std=0.1)
  prompts = data_lib.sample_prompts_from_dataset(jax.random.PRNGKey(8), dataset, 200, 4)
  rows = np.concatenate([np.asarray(dataset.x_Mxd), np.asarray(dataset.y_M)[:, None]], axis=1)
  x = np.asarray(prompts.z_BxNxD[..., 1:-1])
  context_pairs = np.concatenate([x[:, :-1], np.asarray(prompts.z_BxNxD[:, :-1, -1:])], axis=-1)
  query_pairs = np.concatenate([x[:, -1], np.asarray(prompts.y_B)[:, None]], axis=-1)
  for pair in np.concatenate([context_pairs.reshape(-1, 4), query_pairs]):
    assert np.any(np.all(rows == pair, axis=1))
  # 1000 draws from 50 rows with replacement: all rows are used with probability > 0.99.
  used = {tuple(p) for p in context_pairs.reshape(-1, 4)} | {tuple(p) for p in query_pairs}
  assert len(used) == 50


def test_samplers_jit_and_vmap():
  theta0 = data_lib.sample_sphere(jax.random.PRNGKey(1), (), 3)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)

  def one(key):
    theta = data_lib.task_sampler('sphere', theta0)(key, 8)
    return data_lib.sample_prompts(key, theta, 2, x_std=1.0, noise_std=0.1)

  batched = jax.jit(jax.vmap(one))(keys)
  assert batched.z_BxNxD.shape == (4, 8, 3, 5)
  np.testing.assert_allclose(batched.z_BxNxD[2], one(keys[2]).z_BxNxD, rtol=1e-6)

"""Zero-shot, few-shot and mixed losses and the few-shot weight schedules."""

import jax
import numpy as np
import optax
import pytest

from lafit import data as data_lib
from lafit import losses
from lafit import model as model_lib
from tests.test_model import naive_forward


def setup(seed=0):
  params = model_lib.init_params(jax.random.PRNGKey(seed), 2, init_std=0.4)
  theta = data_lib.sample_sphere(jax.random.PRNGKey(seed + 1), (6,), 2)
  prompts = data_lib.sample_prompts(jax.random.PRNGKey(seed + 2), theta, 3, x_std=1.0,
                                    noise_std=0.2)
  return params, prompts


def test_few_and_zero_shot_match_naive():
  params, prompts = setup()
  fs, zs = [], []
  for z, y in zip(prompts.z_BxNxD, prompts.y_B):
    fs.append((naive_forward(params['W_KQ'], params['W_V'], z)[-1, -1] - y) ** 2)
    zs.append((naive_forward(params['W_KQ'], params['W_V'], z[-1:])[-1, -1] - y) ** 2)
  np.testing.assert_allclose(losses.few_shot_loss(params, prompts), np.mean(fs), rtol=1e-5)
  np.testing.assert_allclose(losses.zero_shot_loss(params, prompts), np.mean(zs), rtol=1e-5)


@pytest.mark.parametrize('step', [0, 3, 9])
def test_mixed_loss_linear_decay(step):
  params, prompts = setup(1)
  loss = losses.make_loss_fn('zsfs', num_steps=10)
  weight = (10 - 1 - step) / (10 - 1)
  expected = (losses.zero_shot_loss(params, prompts)
              + weight * losses.few_shot_loss(params, prompts))
  np.testing.assert_allclose(loss(params, prompts, step), expected, rtol=1e-6)


def test_mixed_loss_constant_and_schedule():
  params, prompts = setup(2)
  zs = losses.zero_shot_loss(params, prompts)
  fs = losses.few_shot_loss(params, prompts)
  constant = losses.make_loss_fn('zsfs', num_steps=10, fs_weight=0.25)
  np.testing.assert_allclose(constant(params, prompts, 7), zs + 0.25 * fs, rtol=1e-6)
  cosine = optax.cosine_decay_schedule(2.0, decay_steps=10)
  scheduled = losses.make_loss_fn('zsfs', num_steps=10, fs_weight=cosine)
  np.testing.assert_allclose(scheduled(params, prompts, 4), zs + cosine(4) * fs, rtol=1e-6)


def test_linear_decay_endpoints():
  schedule = losses.linear_decay(5000)
  assert float(schedule(0)) == 1.0
  assert float(schedule(4999)) == 0.0
  np.testing.assert_allclose(schedule(1000), 3999 / 4999, rtol=1e-6)


def test_bad_loss_inputs_rejected():
  with pytest.raises(ValueError, match='loss kind'):
    losses.make_loss_fn('mse')
  with pytest.raises(ValueError, match='>= 0'):
    losses.make_loss_fn('zsfs', 10, fs_weight=-1.0)
  with pytest.raises(ValueError, match='linear_decay'):
    losses.make_loss_fn('zsfs', 10, fs_weight='cosine')


@pytest.mark.parametrize('num_layers,num_heads', [(1, 1), (1, 2), (2, 1)])
def test_shared_pass_matches_separate_losses(num_layers, num_heads):
  params = model_lib.init_params(jax.random.PRNGKey(3), 2, num_layers=num_layers,
                                 num_heads=num_heads, init_std=0.4)
  _, prompts = setup(3)
  zero_shot, few_shot = losses.zero_and_few_shot_losses(params, prompts)
  np.testing.assert_allclose(zero_shot, losses.zero_shot_loss(params, prompts), rtol=1e-5)
  np.testing.assert_allclose(few_shot, losses.few_shot_loss(params, prompts), rtol=1e-5)


@pytest.mark.parametrize('step', [0, 4])
def test_joint_loss_matches_each_kind(step):
  params, prompts = setup(3)
  joint = losses.make_joint_loss_fn(num_steps=10)
  zs_only = losses.make_joint_loss_fn(num_steps=10, few_shot=False)
  coef_zs, coef_zsfs = losses.few_shot_coefficients(['zs', 'zsfs'])
  zs = losses.make_loss_fn('zs')
  zsfs = losses.make_loss_fn('zsfs', num_steps=10)
  grad = jax.grad(joint)
  # The zero-shot kind is exact: `0 * L_FS` adds zeros to its value and gradient.
  np.testing.assert_array_equal(joint(params, prompts, step, coef_zs), zs(params, prompts, step))
  np.testing.assert_array_equal(zs_only(params, prompts, step, coef_zs),
                                zs(params, prompts, step))
  for name, g in grad(params, prompts, step, coef_zs).items():
    np.testing.assert_array_equal(g, jax.grad(zs)(params, prompts, step)[name])
  np.testing.assert_allclose(joint(params, prompts, step, coef_zsfs),
                             zsfs(params, prompts, step), rtol=1e-6)


def test_joint_loss_rejects_unknown_kind():
  with pytest.raises(ValueError, match="'fs' is invalid; valid kinds are zs, zsfs"):
    losses.few_shot_coefficients(['zs', 'fs'])

import jax
import numpy as np

from lafit import model as model_lib
from lafit import plots


def test_parameter_image_scales_each_matrix():
  params = model_lib.init_params(jax.random.PRNGKey(0), 3, parameterization='separate',
                                 init_std=0.7)
  image, scales = plots.parameter_image(params)
  w_q, w_k, w_v = (np.asarray(params[k][0, 0], np.float64) for k in ('W_Q', 'W_K', 'W_V'))
  w_kq = w_q.T @ w_k
  size = w_kq.shape[0]
  assert image.shape == (size, 2 * size + 1)
  assert np.all(np.isnan(image[:, size]))
  np.testing.assert_allclose(scales['W_KQ'], np.max(np.abs(w_kq)), rtol=1e-6)
  np.testing.assert_allclose(scales['W_V'], np.max(np.abs(w_v)), rtol=1e-6)
  np.testing.assert_allclose(image[:, :size] * scales['W_KQ'], w_kq, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(image[:, size + 1:] * scales['W_V'], w_v, rtol=1e-5, atol=1e-6)


def test_parameter_image_of_zero_matrix():
  params = model_lib.init_params(jax.random.PRNGKey(1), 2)
  params['W_KQ'] = params['W_KQ'] * 0
  image, scales = plots.parameter_image(params)
  assert scales['W_KQ'] == 1e-12
  assert np.all(image[:, :4] == 0)

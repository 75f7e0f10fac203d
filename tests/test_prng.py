"""The fused threefry sampler against `jax.random`, bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lafit import prng

SHAPES = [(), (7,), (3, 4, 5), (5000, 27)]


def _keys():
  return [jax.random.PRNGKey(0), jax.random.PRNGKey(2 ** 31 + 12345), jax.random.key(7)]


@pytest.mark.parametrize('shape', SHAPES)
def test_normal_matches_jax(shape):
  for key in _keys():
    np.testing.assert_array_equal(jax.jit(lambda k: prng.normal(k, shape))(key),
                                  jax.jit(lambda k: jax.random.normal(k, shape))(key))


@pytest.mark.parametrize('shape', SHAPES)
def test_uniform_matches_jax(shape):
  for key in _keys():
    # Both under jit: XLA may fuse the scaling into one multiply-add, which rounds once.
    for bounds in ((0.0, 1.0), (-2.5, 0.5)):
      np.testing.assert_array_equal(
          jax.jit(lambda k: prng.uniform(k, shape, jnp.float32, *bounds))(key),
          jax.jit(lambda k: jax.random.uniform(k, shape, jnp.float32, *bounds))(key))


def test_uniform_gradient_of_bounds():
  key = jax.random.PRNGKey(4)

  def mean_sample(sample):
    return lambda low, high: jnp.mean(sample(key, (50,), jnp.float32, low, high))

  expected = jax.grad(mean_sample(jax.random.uniform), argnums=(0, 1))(-1.0, 2.0)
  actual = jax.grad(mean_sample(prng.uniform), argnums=(0, 1))(-1.0, 2.0)
  np.testing.assert_allclose(actual, expected, rtol=1e-6)


@pytest.mark.parametrize('bounds', [(0, 100_000), (-5, 7), (3, 4), (4, 2),
                                    (-2 ** 31, 2 ** 31 - 1)])
def test_randint_matches_jax(bounds):
  for key in _keys():
    np.testing.assert_array_equal(prng.randint(key, (500, 21), *bounds),
                                  jax.random.randint(key, (500, 21), *bounds))


def test_matches_jax_under_vmap():
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  np.testing.assert_array_equal(
      jax.jit(jax.vmap(lambda k: prng.normal(k, (100, 6))))(keys),
      jax.vmap(lambda k: jax.random.normal(k, (100, 6)))(keys))
  np.testing.assert_array_equal(
      jax.jit(jax.vmap(lambda k: prng.randint(k, (100,), 0, 1000)))(keys),
      jax.vmap(lambda k: jax.random.randint(k, (100,), 0, 1000))(keys))


def test_other_implementations_and_dtypes_fall_back():
  key = jax.random.key(5, impl='rbg')
  np.testing.assert_array_equal(prng.normal(key, (10,)), jax.random.normal(key, (10,)))
  np.testing.assert_array_equal(prng.randint(key, (10,), 0, 9),
                                jax.random.randint(key, (10,), 0, 9))
  key = jax.random.PRNGKey(5)
  np.testing.assert_array_equal(prng.normal(key, (10,), jnp.bfloat16),
                                jax.random.normal(key, (10,), jnp.bfloat16))


# Known-answer vectors of threefry2x32 with 20 rounds from Random123 (tests/kat_vectors),
# also used by JAX's tests: key, counter, output.
KNOWN_ANSWERS = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize('key, counter, expected', KNOWN_ANSWERS)
def test_threefry_known_answers(key, counter, expected):
  word0, word1 = prng.threefry2x32(jnp.array(key, jnp.uint32),
                                   jnp.array([counter[0]], jnp.uint32),
                                   jnp.array([counter[1]], jnp.uint32))
  assert int(word0[0]) == expected[0]
  assert int(word1[0]) == expected[1]

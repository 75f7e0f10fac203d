"""Threefry random numbers written so that XLA's CPU backend fuses them into one loop.

On CPU, `jax.random` runs the 20 rounds of the threefry2x32 hash as a loop of 5 passes over
whole arrays, each pass reading and writing every counter. Here the same hash is written as
straight-line `jax.numpy` code, so XLA fuses the rounds and the conversion to floats into
one loop over the output, with the counters kept in registers. Each draw is then computed
once into memory (see `_computed_once`).

`normal`, `uniform` and `randint` return the same values as their `jax.random` namesakes
for the same key, bit for bit (float32 and int32; tests compare them). For anything else
they call `jax.random`: keys of another PRNG implementation (`rbg`, `unsafe_rbg`), other
dtypes, arrays of more than 2^32 entries, and JAX configured with
`jax_threefry_partitionable=False`, whose counter layout differs.

On a 2-core x86-64 CPU (jax 0.10.2), the median pretraining step on token batches took
4.1 ms with an earlier version of this module and 6.6 ms with `jax.random`, the rest of
the code being the same. BENCHMARKS.md has the rates of a draw alone, for this module
and for `jax.random`.
"""

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_THREEFRY = 'threefry2x32'
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KEY_PARITY = np.uint32(0x1BD11BDA)
_MAX_SIZE = 2 ** 32  # Up to this size the high word of every counter is 0.


def _key_words(key: Array) -> Array | None:
  """Returns the two uint32 words of a threefry key, or None where the fast path is off."""
  if not jax.config.jax_threefry_partitionable:
    return None
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != () or str(jax.random.key_impl(key)) != _THREEFRY:
      return None
    return jax.random.key_data(key)
  if jax.config.jax_default_prng_impl != _THREEFRY or key.shape != (2,):
    return None
  return key


def _rotate_left(x: Array, distance: int) -> Array:
  return lax.shift_left(x, np.uint32(distance)) | lax.shift_right_logical(
      x, np.uint32(32 - distance))


def threefry2x32(key_words: Array, x0: Array, x1: Array) -> tuple[Array, Array]:
  """Applies the threefry2x32 hash (20 rounds) to the counter pairs `(x0, x1)`.

  `key_words` contains the two uint32 words of the key. Every round is written out, so
  XLA can fuse the whole hash with its producers and consumers.
  """
  k0, k1 = key_words[0], key_words[1]
  schedule = (k0, k1, k0 ^ k1 ^ _KEY_PARITY)
  x0 = x0 + schedule[0]
  x1 = x1 + schedule[1]
  for block in range(5):
    for distance in _ROTATIONS[block % 2]:
      x0 = x0 + x1
      x1 = x0 ^ _rotate_left(x1, distance)
    x0 = x0 + schedule[(block + 1) % 3]
    x1 = x1 + schedule[(block + 2) % 3] + np.uint32(block + 1)
  return x0, x1


def _hash_counters(key_words: Array, counters: Array) -> Array:
  """32 random bits per counter, as `jax.random.bits` gives them for a threefry key.

  `counters` is the flat index of each entry (`jax.random.bits` hashes the pair
  `(0, index)` and returns the xor of the two output words).
  """
  word0, word1 = threefry2x32(key_words, jnp.zeros(counters.shape, np.uint32), counters)
  return word0 ^ word1


def _counters(shape: tuple[int, ...]) -> Array:
  size = int(np.prod(shape, dtype=np.int64))
  return lax.iota(np.uint32, size).reshape(shape)


def _fast(key: Array, shape, dtype) -> tuple[Array | None, tuple[int, ...]]:
  shape = tuple(int(s) for s in shape)
  if np.prod(shape, dtype=np.int64) >= _MAX_SIZE:
    return None, shape
  if dtype is not None and np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.int32)):
    return None, shape
  return _key_words(jnp.asarray(key)), shape


def _computed_once(compute, init: Array, key_words: Array) -> Array:
  """Returns `compute(init)`, computed once into memory.

  XLA's CPU backend counts integer arithmetic as cheap, so it fuses the hash into every
  computation that reads its output and reruns the 20 rounds in each (erfinv alone reads
  its argument twice). The body of a loop is not fused with what reads the loop's result,
  so `compute` runs in a loop of one iteration, whose count comes from the key so that XLA
  cannot unroll it. `lax.optimization_barrier` would not help: the CPU backend removes it
  before fusion.

  The loop carries `init` (uint32) and the result in its buffer, bit-cast to uint32, so
  no buffer is filled only to start the loop. With a buffer of zeros instead, the normal
  draw ran 1.5 times slower on a 2-core x86-64 CPU (jax 0.10.2).
  """
  odd = key_words[0] | np.uint32(1)
  trip_count = (odd // odd).astype(jnp.int32)
  result_dtype = jax.eval_shape(compute, init).dtype
  carried = lax.fori_loop(
      0, trip_count, lambda i, value: lax.bitcast_convert_type(compute(value), np.uint32), init)
  return lax.bitcast_convert_type(carried, result_dtype)


def _zero_to_one(bits: Array) -> Array:
  """Maps 32 random bits to float32 on `[0, 1)`, as `jax.random.uniform` does."""
  mantissa = lax.shift_right_logical(bits, np.uint32(32 - 23))
  one_to_two = lax.bitcast_convert_type(mantissa | np.float32(1.0).view(np.uint32),
                                        np.float32)
  return one_to_two - np.float32(1.0)


def _scaled(floats: Array, minval, maxval) -> Array:
  """Maps floats on `[0, 1)` to `[minval, maxval)`, as `jax.random.uniform` does."""
  minval = jnp.asarray(minval, np.float32)
  maxval = jnp.asarray(maxval, np.float32)
  return lax.max(minval, floats * (maxval - minval) + minval)


def uniform(key: Array, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0) -> Array:
  """Samples uniform values on `[minval, maxval)`; equals `jax.random.uniform`."""
  words, shape = _fast(key, shape, dtype)
  if words is None or jnp.ndim(minval) or jnp.ndim(maxval):
    return jax.random.uniform(key, shape, dtype, minval, maxval)
  # The bounds are applied outside the loop, so gradients with respect to them flow.
  floats = _computed_once(lambda counters: _zero_to_one(_hash_counters(words, counters)),
                          _counters(shape), words)
  return _scaled(floats, minval, maxval)


def normal(key: Array, shape=(), dtype=jnp.float32) -> Array:
  """Samples standard normal values; equals `jax.random.normal`.

  Like `jax.random.normal`, it maps a uniform variate on `(-1, 1)` through `sqrt(2) erfinv`.
  """
  words, shape = _fast(key, shape, dtype)
  if words is None:
    return jax.random.normal(key, shape, dtype)
  low = np.nextafter(np.float32(-1.0), np.float32(0.0))
  bits = _computed_once(lambda counters: _hash_counters(words, counters), _counters(shape),
                        words)

  def transform(bits):
    u = _scaled(_zero_to_one(bits), low, np.float32(1.0))
    return np.float32(np.sqrt(2.0)) * lax.erf_inv(u)

  # The bits and their transform are two loops: with the hash and erfinv in one loop the
  # draw ran 1.2 times slower (same machine as `_computed_once`).
  return _computed_once(transform, bits, words)


def randint(key: Array, shape, minval: int, maxval: int) -> Array:
  """Samples int32 values on `[minval, maxval)`; equals `jax.random.randint`.

  `minval` and `maxval` are Python integers here. The two 32-bit draws per value are
  combined as `jax.random.randint` combines them, in uint32 arithmetic. For a span above
  2^16 its multiplier `(2^16 mod span)^2` wraps around to a multiple of 2^32, so the value
  is the second draw modulo the span. The bias is then of order `span / 2^32`.
  """
  words, shape = _fast(key, shape, jnp.int32)
  info = np.iinfo(np.int32)
  if (words is None or not isinstance(minval, (int, np.integer))
      or not isinstance(maxval, (int, np.integer))
      or not info.min <= minval <= info.max or not info.min <= maxval <= info.max):
    return jax.random.randint(key, shape, minval, maxval, jnp.int32)
  key_high, key_low = jax.random.split(key)
  span = np.uint32(max(int(maxval) - int(minval), 1))
  multiplier = np.uint32(((2 ** 16 % int(span)) ** 2 % 2 ** 32) % int(span))

  def compute(counters):
    low_bits = _hash_counters(_key_words(key_low), counters)
    if multiplier == 0:  # The first draw does not change the value, so it is not computed.
      offset = low_bits % span
    else:
      high_bits = _hash_counters(_key_words(key_high), counters)
      offset = (high_bits % span) * multiplier + low_bits % span
    return jnp.int32(minval) + (offset % span).astype(jnp.int32)

  return _computed_once(compute, _counters(shape), words)

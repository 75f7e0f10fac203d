"""Array operations shared by the data and model modules."""

import jax
import numpy as np
import pytest

from lafit import ops


@pytest.mark.parametrize('size', [1, 7, 64, 65])
def test_contract_last_matches_numpy(size):
  # Sizes up to 64 are summed term by term and longer ones by einsum: both paths.
  rng = np.random.default_rng(size)
  a = rng.standard_normal((3, 1, 4, size)).astype(np.float32)
  b = rng.standard_normal((3, 5, 1, size)).astype(np.float32)
  expected = np.einsum('xyzi,xyzi->xyz', *np.broadcast_arrays(a.astype(np.float64),
                                                              b.astype(np.float64)))
  np.testing.assert_allclose(ops.contract_last(a, b), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.jit(ops.contract_last)(a, b), expected, rtol=1e-5,
                             atol=1e-5)


def test_contract_last_rejects_mismatched_axes():
  with pytest.raises(ValueError, match=r'last axes of the same size.*\(2, 3\).*\(2, 4\)'):
    ops.contract_last(np.ones((2, 3)), np.ones((2, 4)))

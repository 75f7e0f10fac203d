"""Shared test settings: run JAX on the CPU, as CI does, and keep caches out of $HOME."""

import os
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Command-line tools started by the tests cache compiled programs here, not in ~/.cache.
os.environ['LAFIT_CACHE_DIR'] = os.path.join(tempfile.mkdtemp(prefix='lafit-test-'), 'xla')

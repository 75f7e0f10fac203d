"""Shared test settings: run JAX on the CPU, as CI does."""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')

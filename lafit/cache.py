"""A persistent cache of compiled programs, shared by runs on one machine.

Compiling the training scans, the population objective and the evaluation takes 7 to 10 s
of each paper run on a 2-core CPU, the same every time for the same shapes. JAX can keep
the compiled programs on disk, so a later run with the same shapes and the same JAX version
loads them instead of compiling again. The command-line tools turn it on with
`--compilation_cache=DIR` (default `$LAFIT_CACHE_DIR`, else `~/.cache/lafit/xla`); an empty
value turns it off. Library users call `enable_compilation_cache` themselves, or not.
"""

import os

from absl import flags
import jax


def default_cache_dir() -> str:
  """Returns `$LAFIT_CACHE_DIR`, or `~/.cache/lafit/xla` when it is unset."""
  return os.environ.get('LAFIT_CACHE_DIR',
                        os.path.join(os.path.expanduser('~'), '.cache', 'lafit', 'xla'))


def define_flag() -> flags.FlagHolder:
  """Defines `--compilation_cache` for a command-line tool."""
  return flags.DEFINE_string(
      'compilation_cache', default_cache_dir(),
      'Directory of the persistent cache of compiled programs, so that a later run with the '
      'same shapes skips compilation; empty to turn it off.')


def enable_compilation_cache(path: str) -> None:
  """Caches every compiled program under `path` (created if needed); `''` does nothing."""
  if not path:
    return
  os.makedirs(path, exist_ok=True)
  jax.config.update('jax_compilation_cache_dir', path)
  # Cache every program, however small or fast to compile: a run compiles about 60, and
  # together the small ones still take seconds.
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)

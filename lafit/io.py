"""Atomic writes of results, tables, parameters and figures.

Every file is written to a temporary file in the same directory and then renamed over the
target, so a reader (or a re-run after an interruption) finds either the old file or the
complete new one, never a partial write.
"""

import contextlib
import json
import math
import os
import tempfile
from typing import Any, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  suffix = os.path.splitext(path)[1]
  fd, tmp_path = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=suffix)
  os.close(fd)
  # mkstemp creates the file with mode 0600; give results the usual umask-based mode.
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp_path, 0o666 & ~umask)
  try:
    yield tmp_path
    os.replace(tmp_path, path)
  finally:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  with atomic_path(path) as tmp_path:
    with open(tmp_path, 'w', encoding='utf-8') as f:
      f.write(text)


def to_jsonable(value: Any) -> Any:
  """Converts arrays and numpy scalars to lists and floats; NaN and inf become `None`."""
  if isinstance(value, dict):
    return {str(k): to_jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [to_jsonable(v) for v in value]
  if hasattr(value, 'tolist'):
    return to_jsonable(value.tolist())
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def differing_fields(a: dict, b: dict, prefix: str = '') -> list[str]:
  """Returns the sorted dotted paths, such as `finetune.num_steps`, where two dicts differ.

  Nested dicts are compared field by field. A field that only one of them has counts as
  differing.
  """
  differing = []
  for key in sorted(set(a) | set(b), key=str):
    path = f'{prefix}{key}'
    if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
      differing.extend(differing_fields(a[key], b[key], prefix=f'{path}.'))
    elif key not in a or key not in b or a[key] != b[key]:
      differing.append(path)
  return differing


def write_json(path: str, value: Any) -> None:
  """Writes `value` as indented JSON, atomically."""
  write_text(path, json.dumps(to_jsonable(value), indent=2, sort_keys=False) + '\n')


def read_json(path: str) -> Any:
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def write_npz(path: str, arrays: dict[str, Any]) -> None:
  """Saves named arrays to an `.npz` file, atomically."""
  with atomic_path(path) as tmp_path:
    with open(tmp_path, 'wb') as f:
      np.savez(f, **{name: np.asarray(a) for name, a in arrays.items()})


def read_npz(path: str) -> dict[str, np.ndarray]:
  with np.load(path) as f:
    return {name: f[name] for name in f.files}


def save_figure(path: str, figure, *, tight: bool = True) -> None:
  """Saves a matplotlib figure as PNG, atomically.

  With `tight`, the saved area is cropped to the drawn content, which draws the figure
  twice. Figures that set their own margins pass `tight=False`.
  """
  with atomic_path(path) as tmp_path:
    figure.savefig(tmp_path, format='png', dpi=120, bbox_inches='tight' if tight else None)

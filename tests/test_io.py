"""Atomic writes: complete files or none, with the usual permissions."""

import os
import stat

import numpy as np
import pytest

from lafit import io


def test_write_json_converts_arrays_and_nonfinite(tmp_path):
  path = tmp_path / 'sub' / 'r.json'
  io.write_json(str(path), {'a': np.arange(3), 'b': float('nan'), 'c': (1.5, np.float32(2))})
  assert io.read_json(str(path)) == {'a': [0, 1, 2], 'b': None, 'c': [1.5, 2.0]}


def test_failed_write_leaves_old_file(tmp_path):
  path = tmp_path / 'r.txt'
  io.write_text(str(path), 'old')
  with pytest.raises(RuntimeError):
    with io.atomic_path(str(path)) as tmp:
      with open(tmp, 'w') as f:
        f.write('partial')
      raise RuntimeError('interrupted')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['r.txt']


def test_written_files_follow_umask(tmp_path):
  old_umask = os.umask(0o022)
  try:
    io.write_npz(str(tmp_path / 'a.npz'), {'x': np.ones(2)})
  finally:
    os.umask(old_umask)
  mode = stat.S_IMODE(os.stat(tmp_path / 'a.npz').st_mode)
  assert mode == 0o644
  np.testing.assert_array_equal(io.read_npz(str(tmp_path / 'a.npz'))['x'], np.ones(2))

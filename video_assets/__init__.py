"""video_assets: a Dagster pipeline from a song and a prompt to a beat-synchronised short video."""

import os as _os

# librosa's numba kernels compile on first use; a persistent cache pays that once per machine.
if "NUMBA_CACHE_DIR" not in _os.environ:
    from video_assets.config import numba_cache_dir as _numba_cache_dir

    _os.environ["NUMBA_CACHE_DIR"] = str(_numba_cache_dir())
    _numba_cache_dir().mkdir(parents=True, exist_ok=True)

"""video_assets: a Dagster pipeline from a song and a prompt to a beat-synchronised short video."""

import os as _os

# librosa's numba kernels compile on first use; a persistent cache pays that once per machine.
# Set before librosa (numba) is imported; an unwritable location falls back to the next one.
if "NUMBA_CACHE_DIR" not in _os.environ:
    from video_assets.config import writable_numba_cache_dir as _numba_cache_dir

    _cache = _numba_cache_dir()
    if _cache is not None:
        _os.environ["NUMBA_CACHE_DIR"] = str(_cache)

"""Pure media functions: no Dagster imports here (timing, beats, art, animatics, composition)."""

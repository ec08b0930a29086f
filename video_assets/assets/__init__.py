"""One module per stage, in data-flow order: request, beats, script, storyboard, clips, final."""

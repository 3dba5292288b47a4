"""The MusicGen path: collect layer activations, find concepts per layer, judge renders, build tiny models."""

"""Audio data: the one audio-folder reader and the seeded concept-clip generator."""

"""Running models forward for users: RAVE `.ts` streaming, MusicGen backends and hooks, the live
engine, audio I/O, OSC and offline renders. Imports `sae`, never `training`."""

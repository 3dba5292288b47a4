"""Making artifacts: concept datasets, activation collection, SAE training jobs, concept finding,
the demo RAVE model, and the `musicsae` command line on top of everything."""

import os

# torch's intra-op threads are OpenMP (libgomp) workers, which by default spin ~300 000 times while they wait for
# each other: on a machine whose cores are taken by other programs the spinning worker holds the core its partner
# needs. A 2-thread `render rave` of 10 s beside two busy processes took 94 s with libgomp's default and 11 s with
# a short spin (1000), which was no slower with a core free (6.5 s vs 6.9 s; bench/omp_wait.py). libgomp reads it
# when torch loads, so it is set on import of `training`, before torch; a policy or spin count the user set wins.
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

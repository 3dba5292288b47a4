"""Making artifacts: concept datasets, activation collection, SAE training jobs, concept finding,
the demo RAVE model, and the `musicsae` command line on top of everything."""

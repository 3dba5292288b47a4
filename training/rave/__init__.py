"""The RAVE path: collect latents and inner layers, find concepts, judge steering, build the tiny and demo models."""

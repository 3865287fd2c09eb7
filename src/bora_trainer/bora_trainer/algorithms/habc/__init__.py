"""HABC (hierarchical advantage-weighted BC): config, labels, losses, learner, offline and online wiring."""

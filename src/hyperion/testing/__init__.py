"""Public test kit: builders, a manual clock, and the provider and store contract suites."""

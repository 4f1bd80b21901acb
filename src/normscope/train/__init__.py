"""Training: settings, the loop, evaluation, metrics and run directories."""

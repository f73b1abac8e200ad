"""Differential privacy: DP-SGD training and its accountant (filled below)."""

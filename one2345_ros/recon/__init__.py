"""Reconstruction backends: visual hull (hull.py) and SparseNeuS (sparseneus/)."""

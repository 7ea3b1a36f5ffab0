"""Measurement: the training step on meta, CPU or CUDA; sweeps and discrepancy reports."""

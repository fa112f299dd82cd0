"""Pairs of images or arrays on disk, read, scaled and batched for training and inference."""

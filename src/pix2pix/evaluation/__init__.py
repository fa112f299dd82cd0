"""Evaluation: image metrics, the FCN-score's segmenter and FID/KID."""

"""Evaluation: image metrics, the FCN-score's segmenter, FID/KID and the paper's ablations."""

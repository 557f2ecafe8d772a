"""Training: synthetic blur, paired datasets, the training loop and model export."""

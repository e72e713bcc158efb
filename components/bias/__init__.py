"""Bias probes: how a label set's design changes who gets flagged labels (the CLIP paper's Broader Impacts analysis)."""

"""CLIP-score filtering of the training pairs (DataComp's CLIP score and basic filters): score, select, report."""

"""How things run at scale: Ray Train launcher, DeepSpeed configs, local services."""

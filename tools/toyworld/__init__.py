"""The embedded model: a small CLIP trained on a synthetic world (reproduce.sh runs every step)."""

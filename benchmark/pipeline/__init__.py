"""The study's stages (prep, mask, recognize), each with backends found by name."""

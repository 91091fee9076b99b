"""The prep stage: detect, keep frames with one confident near-frontal face, crop, select."""

"""Tiny stand-in models that test the wiring of backends whose real weights are
registration-only (RingNet, InsightFace buffalo_l). Never used by a real run."""

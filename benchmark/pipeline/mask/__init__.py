"""The mask stage: reconstruct in 3D, render back, cut to the face (or a control)."""

"""The study's stages (prep, mask, recognize), each with backends found by name."""


def all_registries() -> tuple:
    """Every backend registry, in stage order (their maps only: no backend is imported)."""
    from benchmark.pipeline.mask.types import CONTROLS, CUTS, RECONSTRUCTORS, RENDERERS
    from benchmark.pipeline.prep.types import DETECTORS, POSES
    from benchmark.pipeline.recognize.types import EMBEDDERS

    return (DETECTORS, POSES, RECONSTRUCTORS, RENDERERS, CUTS, CONTROLS, EMBEDDERS)

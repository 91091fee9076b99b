"""A STAND-IN for the RingNet checkpoint: a TF1-style graph with RingNet's tensor names and shapes.

The real ``ring_6_68641`` needs a registration, so tests and the GPU check build this
instead and save it as a TF1 checkpoint (``.meta``, ``.index``, ``.data-00000-of-00001``).
It has RingNet's interface — placeholder ``input_images`` (B × 224 × 224 × 3), parameters
at ``add_2`` (B × 159: camera (s, tx, ty), pose 6, shape 100, expression 50) and vertices at
``Flamenetnormal_2/Add_9`` (B × 5023 × 3, metres, OpenCV camera frame) — but not its
weights: the vertices are the FLAME sample head plus a small image-dependent offset, and
the camera puts the head where a prep crop has its face. It checks wiring (loading,
tensor names, batching, conversion, projection), never reconstruction quality.

``convs`` adds a stack of random 3×3 convolutions in front, so that the GPU check can time a
network of RingNet's size (its ResNet-50 encoder is ≈ 4 GMAC per image); the default has none.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.pipeline.mask.ringnet import (
    CHECKPOINT,
    IMG_SIZE,
    INPUT_PLACEHOLDER,
    import_tensorflow,
)

N_PARAMETERS = 159  # 3 camera + 6 pose + 100 shape + 50 expression (RingNet's config)
STANDIN_SCALE = 5.4  # camera s: ≈ 600 px per metre in a 224 crop, as prep crops have
# (channels, 3×3 convolutions, stride of the first) per stage: ≈ 3.8 GMAC at 224×224
RESNET50_LIKE = ((64, 6, 4), (128, 8, 2), (256, 12, 2), (512, 6, 2))


def flame_in_ringnet_frame(flame_vertices: np.ndarray) -> np.ndarray:
    """FLAME's y-up, z-towards-viewer head turned to OpenCV's camera frame (y down, z away)."""
    v = np.asarray(flame_vertices, dtype=np.float64)
    v = v - 0.5 * (v.min(axis=0) + v.max(axis=0))
    return np.column_stack((v[:, 0], -v[:, 1], -v[:, 2]))  # 180° about x: a rotation


def build_standin_checkpoint(
    prefix: Path | str,
    flame_vertices: np.ndarray,
    batch: int | None = None,
    convs: tuple[tuple[int, int, int], ...] = (),
    seed: int = 0,
) -> Path:
    """Write a stand-in checkpoint at ``prefix`` (e.g. ``dir/ring_6_68641``); return the prefix."""
    tf = import_tensorflow()
    v1 = tf.compat.v1
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    template = flame_in_ringnet_frame(flame_vertices).astype(np.float32)
    n_vertices = len(template)
    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        images = v1.placeholder(tf.float32, (batch, IMG_SIZE, IMG_SIZE, 3), INPUT_PLACEHOLDER)
        x, channels = images, 3
        for stage, (width, repeats, stride) in enumerate(convs):
            for k in range(repeats):
                scale = np.sqrt(2.0 / (9 * channels))
                kernel = v1.Variable(
                    rng.normal(0, scale, (3, 3, channels, width)).astype(np.float32),
                    name=f"standin_conv{stage}_{k}",
                )
                step = stride if k == 0 else 1
                x = tf.nn.relu(tf.nn.conv2d(x, kernel, step, "SAME"))
                channels = width
        features = tf.reduce_mean(x, axis=[1, 2], name="standin_pool")  # B × channels
        w_params = v1.Variable(
            rng.normal(0, 0.02, (channels, N_PARAMETERS)).astype(np.float32),
            name="standin_w_params",
        )
        bias = np.zeros(N_PARAMETERS, np.float32)
        bias[0] = STANDIN_SCALE
        b_params = v1.Variable(bias, name="standin_b_params")
        tf.add(tf.matmul(features, w_params), b_params, name="add_2")
        w_verts = v1.Variable(
            rng.normal(0, 1e-3, (channels, n_vertices * 3)).astype(np.float32),
            name="standin_w_verts",
        )
        offsets = tf.reshape(tf.matmul(features, w_verts), (-1, n_vertices, 3))
        with v1.name_scope("Flamenetnormal_2"):
            tf.add(tf.constant(template), offsets, name="Add_9")
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            saver.save(session, str(prefix))
    return prefix


def standin_files(folder: Path) -> list[Path]:
    """The three checkpoint files a stand-in leaves in ``folder``."""
    return [folder / f"{CHECKPOINT}{s}" for s in (".meta", ".index", ".data-00000-of-00001")]

"""Render a ``FaceMesh`` the way the original mask stage did: grey, three point lights, on white.

Backends
--------
* ``numpy`` (default) — a pure-numpy z-buffer rasterizer with per-vertex (Gouraud) shading.
* ``opendr`` — the original's renderer itself (OpenDR ``ColoredRenderer`` +
  ``LambertianPointLight``), optional, for parity checks. Install (tested on Debian 12, Python
  3.11): ``apt-get install libosmesa6-dev``; ``pip install 'numpy<2' cython``; ``pip install
  --no-build-isolation opendr==0.78`` (its setup.py imports numpy); then ``pip install
  --force-reinstall --no-deps chumpy-fixed``, because opendr pulls the original ``chumpy``
  0.70, which fails on Python 3.11 (``inspect.getargspec``) and shadows chumpy-fixed.

Upstream facts used (computationalprivacy/unmask, commit a92ac38e8e996ad3deff3aabe0ab2bbe42c0ae81,
``Flame_RingNet_face_reconstruction/RingNet/``; OpenDR 0.78 = mattloper/opendr ``opendr/``)
---------------------------------------------------------------------------------------------
* ``batch_helper.visualize`` renders the predicted FLAME vertices with
  ``util/renderer.get_original``: ``tz = 50000 / (0.5 · 224 · s)`` from RingNet's weak-perspective
  camera ``(s, tx, ty)``; the vertices are shifted by ``(tx, ty, tz)`` and drawn with an OpenDR
  ``ProjectPoints`` camera with ``rt = t = 0`` (camera frame = world frame), focal length
  ``50000 · undo_scale`` (= 50000 for the 224×224 prep crops, whose scale is 1) and principal
  point ``(112, 112)``. A vertex therefore lands on pixel ``112 · s · (X + tx) + 112``: RingNet's
  weak perspective, with ≈ 0.3 % perspective left over (depth of a head / tz).
* The camera frame is OpenCV's: x right, y **down**, z **away** from the camera. RingNet's FLAME
  output is already in that frame (its global rotation flips FLAME's y-up frame), so a
  triangle's ``cross(v1 - v0, v2 - v0)`` points out of the head, and a face turned to the camera
  has a negative signed area ``(x1−x0)(y2−y0) − (y1−y0)(x2−x0)`` in image coordinates — the
  winding of ``mask_types`` (whose frame is this one with z negated).
* ``renderer.simple_renderer``: vertex colour 0.65 (``colors['dark_grey']``) on all three
  channels; white background (``bgcolor = ones``); three ``LambertianPointLight`` at
  ``_rotateY(p, radians(120))`` of p = (−200, −100, −100), (800, 10, 300), (−500, 500, 1000),
  with ``light_color`` (1, 1, 1), (1, 1, 1), (0.7, 0.7, 0.7) — one grey colour **per light**,
  equal on every channel. ``_rotateY`` multiplies the **row** vector on the left,
  ``p @ [[c, 0, s], [0, 1, 0], [-s, 0, c]]``, i.e. it applies R_y(−120°) (in the camera frame,
  y down) to the column vector; the rotated positions are
  (186.6, −100, −123.2), (−659.8, 10, 542.8), (−616.0, 500, −933.0), in the units of the FLAME
  vertices (metres), in the camera frame, with the camera at the origin and the mesh at depth tz.
* OpenDR ``LambertianPointLight``: per vertex, ``max(0, n · normalize(light_pos − v)) ·
  light_color · vc`` (no distance fall-off); the three lights are summed.
  Normals are ``VertNormals``: the sum of the unnormalised face normals
  ``cross(v1 − v0, v2 − v0)`` of the incident faces (area-weighted), normalised.
* OpenDR ``ColoredRenderer``: OpenGL with ``GL_CULL_FACE`` disabled and ``GL_DEPTH_TEST`` on
  (no back-face culling: the nearest surface wins, back faces included, lit by their own
  normals), lighting disabled, the vertex colours interpolated across each triangle (Gouraud);
  fixed-function OpenGL clamps vertex colours to [0, 1] before interpolation (never reached at
  albedo 0.65: the brightest possible vertex is 0.65 · |l̂1 + 0.7 l̂3| ≈ 0.83). The projection
  uses ``pixel_center_offset = 0.5``: projected coordinate ``u = j`` is the **centre** of pixel
  column ``j``. ``overdraw`` is on by default: silhouette edges are also drawn as 1-pixel
  lines, which widens the silhouette by up to one pixel.
* ``SMPLRenderer.__call__`` returns ``(image * 255).astype('uint8')`` — truncation, not rounding.

How the scene maps to the ``mask_types`` frame (x right, y down, z towards the camera, pixels)
----------------------------------------------------------------------------------------------
At the mesh the original's world is a copy of ours scaled by ``k = f / tz`` pixels per metre and
reflected in z: ``x = c + k·X``, ``y = c + k·Y``, ``z = z_mid − k·(Z − tz)``, where
``f = 50000 · size / 224``, ``c = size / 2`` and ``z_mid`` is the middle of the mesh's depth range
(placed at depth tz). The lights go through the same map, so light i sits at
``(c + k·Lx, c + k·Ly, z_mid + f − k·Lz)``. The shading depends only on ``tz``, which the mesh
alone does not carry; see ``camera_distance`` below. Normals are flipped by the same
reflection, so with the ``mask_types`` winding a face's outward normal is
``−cross(v1 − v0, v2 − v0)`` computed in our coordinates.

Choices
-------
* ``camera_distance`` (tz, in the light positions' units). Taken from
  ``mesh.info["camera_distance"]`` when a reconstructor provides it (RingNet: ``50000 / (112·s)``),
  else the renderer's ``camera_distance`` (constructor argument), by default
  ``DEFAULT_CAMERA_DISTANCE = 50000 / 600 ≈ 83.3``: the prep crop makes the detector's face box
  224 / 2.5 ≈ 90 px wide, and a face is ≈ 0.15 m wide (MediaPipe's metric canonical face: 15.5
  cm), so k ≈ 600 px/m (RingNet scale s ≈ 5.4). From tz = 60 to 100 the first light's
  direction turns by 5°; the FLAME render then moves by 1–1.6 grey levels on average.
* Orthographic rasterization of the given pixel coordinates (the reconstructor has projected
  already); pixel centres at integer coordinates, like OpenDR; a pixel is covered when its
  centre is inside a triangle, with the top-left rule on shared edges, so an axis-aligned
  square from x = a to x = b covers exactly b − a columns.
* Visibility by z-buffer (largest z wins); ties go to the lower triangle index (OpenGL's
  ``GL_LESS`` keeps the first-drawn fragment). No back-face culling, like the original.
* Per-vertex lighting with exact per-vertex point-light directions, per-vertex clamp to
  [0, 1], then barycentric (screen-linear) interpolation — the original's perspective-correct
  interpolation differs by < 0.3 % at f = 50000.
* OpenDR's ``overdraw`` is reproduced (``overdraw=True``, the default): silhouette edges —
  edges whose two faces differ in facing, as ``compute_vpe_boundary_idxs`` decides it, including
  its pairing of one-face edges with the last face — are drawn as 1-px lines (one fragment per
  pixel centre along the major axis), hidden where a filled surface is nearer by more than the
  polygon offset (10 × depth slope + 1 depth unit); those pixels count as covered and take the
  colour of the nearest line fragment among *all* triangle edges, as OpenDR's line-mode pass
  gives. Off, coverage is exactly the pixel centres inside triangles.
* OSMesa's colour buffer has 8 bits: OpenDR returns ``round(v · 255) / 255``. We quantize the
  same way, so the output is float32 multiples of 1/255 and the original's
  ``(image * 255).astype('uint8')`` gives the same byte as rounding.
* Output: H×W×3 float32 in [0, 1], three equal channels, background exactly 1.0.

Parity (FLAME_sample.ply, 224×224, OpenDR 0.78 + Mesa 22.3 OSMesa, Python 3.11): mean absolute
difference 0.06–0.08 / 255 over the image, 3–6 pixels of coverage differ (of ≈ 16,000),
depending on where the head sits (98 % of the bytes identical); without overdraw 0.71–0.73 / 255
and ≈ 190 pixels; with the lights turned 110° instead of 120°, 3.1 / 255.
``test_mask_render.py`` re-measures it where OpenDR imports.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.device import check_device
from benchmark.errors import DeviceError, DmbenchError
from benchmark.pipeline.mask.types import (
    RENDERERS,
    FaceMesh,
    MaskFailure,
    Renderer,
    Rendering,
)

ORIGINAL_FOCAL = 50000.0  # renderer.get_original: flength
ORIGINAL_CROP = 224  # RingNet's input size; the focal length scales with size / 224
ALBEDO = 0.65  # renderer.colors['dark_grey']
LIGHT_POSITIONS = ((-200.0, -100.0, -100.0), (800.0, 10.0, 300.0), (-500.0, 500.0, 1000.0))
LIGHT_COLOURS = (1.0, 1.0, 0.7)  # one grey level per light, the same on R, G and B
LIGHT_YAW_DEGREES = 120.0  # simple_renderer(yrot=np.radians(120))
DEFAULT_CAMERA_DISTANCE = ORIGINAL_FOCAL / 600.0  # tz for k ≈ 600 px per metre (see docstring)

# Candidate (triangle, pixel) pairs handled at once; bounds memory for huge triangles.
_CHUNK_CANDIDATES = 1 << 21


def rotated_light_positions(yaw_degrees: float = LIGHT_YAW_DEGREES) -> np.ndarray:
    """The original's light positions in its camera frame (x right, y down, z away), 3 x 3.

    Same operation as ``renderer._rotateY``: the row vector times ``[[c,0,s],[0,1,0],[-s,0,c]]``.
    """
    a = np.radians(yaw_degrees)
    c, s = np.cos(a), np.sin(a)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return np.asarray(LIGHT_POSITIONS, dtype=np.float64) @ rot


def lights_in_mesh_frame(
    size: int, camera_distance: float, z_mid: float, yaw_degrees: float = LIGHT_YAW_DEGREES
) -> np.ndarray:
    """Light positions in the ``mask_types`` pixel frame for a mesh whose depth centre is z_mid."""
    focal = ORIGINAL_FOCAL * size / ORIGINAL_CROP
    k = focal / camera_distance  # pixels per light-position unit at the mesh
    centre = size / 2.0
    cam = rotated_light_positions(yaw_degrees)
    return np.column_stack(
        (centre + k * cam[:, 0], centre + k * cam[:, 1], z_mid + focal - k * cam[:, 2])
    )


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, outward for the ``mask_types`` winding (front: +z).

    Vertices that belong to no (non-degenerate) triangle get a zero normal.
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    v0, v1, v2 = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    face = -np.cross(v1 - v0, v2 - v0)  # length = 2·area, so the sum is area-weighted
    normals = np.zeros_like(v)
    flat = t.ravel()
    for axis in range(3):
        normals[:, axis] = np.bincount(flat, np.repeat(face[:, axis], 3), minlength=len(v))
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    np.divide(normals, length, out=normals, where=length > 0)
    return normals


def lambert_vertex_grey(
    vertices: np.ndarray,
    normals: np.ndarray,
    lights: np.ndarray,
    colours: np.ndarray,
    albedo: float,
) -> np.ndarray:
    """Per-vertex grey: sum over lights of albedo · colour · max(0, n · l̂), clamped to [0, 1]."""
    grey = np.zeros(len(vertices))
    for position, colour in zip(lights, colours, strict=True):
        to_light = position[None, :] - vertices
        to_light /= np.linalg.norm(to_light, axis=1, keepdims=True)
        grey += albedo * colour * np.maximum(np.einsum("ij,ij->i", normals, to_light), 0.0)
    return np.clip(grey, 0.0, 1.0)


def rasterize(
    vertices: np.ndarray, triangles: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest triangle, its barycentric weights and its depth at every pixel centre.

    Returns ``(tri, bary, depth)``: ``tri`` H×W int64 (−1 where nothing covers the pixel),
    ``bary`` H×W×3 float64 (weights of the triangle's vertices 0, 1, 2) and ``depth`` H×W
    float64 (−inf where uncovered). Pixel (row i, column j) is sampled at (x = j, y = i); the
    largest interpolated z wins, ties go to the lower triangle index.
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    npix = size * size
    zbuf = np.full(npix, -np.inf)
    tri_buf = np.full(npix, -1, dtype=np.int64)
    bary_buf = np.zeros((npix, 3))
    x, y = v[:, 0][t], v[:, 1][t]  # F x 3
    area2 = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0])
    x0 = np.maximum(np.ceil(x.min(axis=1, initial=np.inf)), 0)
    x1 = np.minimum(np.floor(x.max(axis=1, initial=-np.inf)), size - 1)
    y0 = np.maximum(np.ceil(y.min(axis=1, initial=np.inf)), 0)
    y1 = np.minimum(np.floor(y.max(axis=1, initial=-np.inf)), size - 1)
    ids = np.nonzero((area2 != 0) & (x1 >= x0) & (y1 >= y0))[0]
    if len(ids) == 0:
        return _images(tri_buf, bary_buf, zbuf, size)

    # Edge functions, edge e opposite vertex e: (1→2), (2→0), (0→1), oriented so the interior
    # is positive: E_e(p) = a_e·(px − x0) + b_e·(py − y0) + c_e, relative to the bounding box's
    # top-left pixel (x0, y0). At a pixel centre exactly on an edge the triangle whose inward
    # edge normal (a_e, b_e) points right, or down for a horizontal edge, owns it (top-left
    # rule), so a pixel on an edge shared by two triangles is counted once.
    x, y, area2 = x[ids], y[ids], area2[ids]
    x0, y0 = x0[ids], y0[ids]
    sign = np.sign(area2)[:, None]
    starts, ends = [1, 2, 0], [2, 0, 1]
    ex, ey = x[:, ends] - x[:, starts], y[:, ends] - y[:, starts]
    a, b = -ey * sign, ex * sign
    c = (ex * (y0[:, None] - y[:, starts]) - ey * (x0[:, None] - x[:, starts])) * sign
    owns = (a > 0) | ((a == 0) & (b > 0))
    inv_area = 1.0 / np.abs(area2)
    z = v[:, 2][t[ids]]
    width = (x1[ids] - x0 + 1).astype(np.int64)
    counts = width * (y1[ids] - y0 + 1).astype(np.int64)
    base = y0.astype(np.int64) * size + x0.astype(np.int64)

    for lo, hi in _chunk_bounds(counts, _CHUNK_CANDIDATES):
        cnt = counts[lo:hi]
        tri = np.repeat(np.arange(lo, hi), cnt)  # index into ids
        offset = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        oy, ox = np.divmod(offset, width[tri])
        edge = c[tri] + a[tri] * ox[:, None] + b[tri] * oy[:, None]
        inside = (edge > 0).all(axis=1)
        on_edge = np.nonzero((edge >= 0).all(axis=1) & ~inside)[0]
        if len(on_edge):
            inside[on_edge] = ((edge[on_edge] > 0) | owns[tri[on_edge]]).all(axis=1)
        keep = np.nonzero(inside)[0]
        if len(keep) == 0:
            continue
        tri, edge = tri[keep], edge[keep]
        pix = base[tri] + oy[keep] * size + ox[keep]
        bary = edge * inv_area[tri, None]
        depth = np.einsum("ij,ij->i", bary, z[tri])

        # z-buffer: candidates that beat every earlier chunk (strictly) and equal the new
        # maximum win; among equal depths the lowest triangle index wins.
        before = zbuf[pix]
        np.maximum.at(zbuf, pix, depth)
        win = np.nonzero((depth == zbuf[pix]) & (depth > before))[0]
        pix, tri = pix[win], tri[win]
        lowest = np.full(npix, len(ids), dtype=np.int64)
        np.minimum.at(lowest, pix, tri)
        final = np.nonzero(tri == lowest[pix])[0]
        tri_buf[pix[final]] = ids[tri[final]]
        bary_buf[pix[final]] = bary[win[final]]
    return _images(tri_buf, bary_buf, zbuf, size)


def _images(
    tri: np.ndarray, bary: np.ndarray, depth: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tri.reshape(size, size), bary.reshape(size, size, 3), depth.reshape(size, size)


def _chunk_bounds(counts: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """Split consecutive triangles into runs of at most ``limit`` candidates (at least one each)."""
    bounds = []
    cum = np.cumsum(counts)
    lo, done = 0, 0
    n = len(counts)
    while lo < n:
        hi = int(np.searchsorted(cum, done + limit, side="right"))
        hi = max(hi, lo + 1)
        bounds.append((lo, hi))
        done = int(cum[hi - 1])
        lo = hi
    return bounds


def edge_faces(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique edges (E×2 vertex indices) and up to two faces per edge (E×2, −1 where absent)."""
    t = np.asarray(triangles, dtype=np.int64)
    pairs = np.concatenate((t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]))
    face = np.tile(np.arange(len(t)), 3)
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    key = lo * (int(t.max(initial=0)) + 1) + hi
    order = np.argsort(key, kind="stable")
    key, face = key[order], face[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    start = np.nonzero(first)[0]
    second = start + 1
    has_second = second < len(key)
    has_second[has_second] = ~first[second[has_second]]
    faces = np.full((len(start), 2), -1, dtype=np.int64)
    faces[:, 0] = face[start]
    faces[has_second, 1] = face[second[has_second]]
    edges = np.column_stack((lo[order][start], hi[order][start]))
    return edges, faces


def silhouette_edges(
    vertices: np.ndarray, triangles: np.ndarray, faces: np.ndarray, camera: np.ndarray
) -> np.ndarray:
    """OpenDR's silhouette test: the edge's two faces do not both face (or both avoid) the camera.

    Like ``renderer.compute_vpe_boundary_idxs``, a face's sign is (centroid − camera) · normal,
    and an edge with one face is paired with the *last* face (OpenDR's ``-1`` index).
    """
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    v0, v1, v2 = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    normal = -np.cross(v1 - v0, v2 - v0)
    away = np.einsum("ij,ij->i", (v0 + v1 + v2) / 3.0 - camera[None, :], normal)
    second = np.where(faces[:, 1] >= 0, faces[:, 1], len(t) - 1)
    return away[faces[:, 0]] * away[second] <= 0


def depth_slopes(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Per triangle max(|∂z/∂x|, |∂z/∂y|): the slope OpenGL's polygon offset multiplies."""
    v = np.asarray(vertices, dtype=np.float64)[np.asarray(triangles, dtype=np.int64)]
    d1, d2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    area2 = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        dzdx = (d1[:, 2] * d2[:, 1] - d2[:, 2] * d1[:, 1]) / area2
        dzdy = (d1[:, 0] * d2[:, 2] - d2[:, 0] * d1[:, 2]) / area2
    slope = np.maximum(np.abs(dzdx), np.abs(dzdy))
    return np.where(np.isfinite(slope), slope, np.inf)


def line_fragments(
    vertices: np.ndarray, values: np.ndarray, edges: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-pixel-wide lines along ``edges``: (pixel index, z, interpolated value) per fragment.

    One fragment per pixel centre on the major axis within the segment, the minor coordinate
    rounded to the nearest pixel centre (how OpenGL's diamond-exit rule lands for 1-px lines).
    """
    v = np.asarray(vertices, dtype=np.float64)
    p0, p1 = v[edges[:, 0]], v[edges[:, 1]]
    g0, g1 = values[edges[:, 0]], values[edges[:, 1]]
    d = p1 - p0
    xmajor = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    major = np.where(xmajor, 0, 1)
    rows = np.arange(len(edges))
    a0, a1 = p0[rows, major], p1[rows, major]
    start = np.ceil(np.minimum(a0, a1))
    count = np.maximum(np.floor(np.maximum(a0, a1)) - start + 1, 0).astype(np.int64)
    count[d[rows, major] == 0] = 0
    edge = np.repeat(rows, count)
    m = start[edge] + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
    frac = (m - a0[edge]) / d[edge, major[edge]]
    minor = p0[edge, 1 - major[edge]] + frac * d[edge, 1 - major[edge]]
    minor = np.floor(minor + 0.5)
    col = np.where(xmajor[edge], m, minor)
    row = np.where(xmajor[edge], minor, m)
    z = p0[edge, 2] + frac * d[edge, 2]
    value = g0[edge] + frac * (g1[edge] - g0[edge])
    ok = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    pix = row[ok].astype(np.int64) * size + col[ok].astype(np.int64)
    return pix, z[ok], value[ok]


def _camera_distance(mesh: FaceMesh, default: float) -> float:
    value = float(mesh.info.get("camera_distance", default))
    if not np.isfinite(value) or value <= 0:
        raise MaskFailure(f"camera_distance must be a positive number, got {value!r}")
    return value


@RENDERERS.register("numpy", default=True)
class NumpyRenderer(Renderer):
    """The original's OpenDR scene, rasterized with numpy on the CPU (see module docstring)."""

    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU

    name = "numpy"

    def __init__(
        self,
        store: object | None = None,
        device: str = "cpu",
        *,
        camera_distance: float = DEFAULT_CAMERA_DISTANCE,
        albedo: float = ALBEDO,
        overdraw: bool = True,
    ) -> None:
        if check_device(device) != "cpu":
            raise DeviceError(
                "the numpy renderer is CPU-only (a 224×224 FLAME render takes milliseconds); "
                "use --device cpu for the mask stage's renderer"
            )
        if not camera_distance > 0:
            raise DmbenchError(f"camera_distance must be positive, got {camera_distance}")
        self.camera_distance = float(camera_distance)
        self.albedo = float(albedo)
        self.overdraw = bool(overdraw)
        self.light_colours = np.asarray(LIGHT_COLOURS, dtype=np.float64)
        self._topology: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _edges(self, triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Edge topology, cached for the last triangle list (one topology per reconstructor)."""
        cached = self._topology
        if cached is None or not np.array_equal(cached[0], triangles):
            cached = (triangles.copy(), *edge_faces(triangles))
            self._topology = cached
        return cached[1], cached[2]

    def vertex_grey(self, mesh: FaceMesh, size: int) -> np.ndarray:
        """Per-vertex shaded grey in [0, 1] (what OpenDR hands to OpenGL as vertex colours)."""
        v = np.asarray(mesh.vertices, dtype=np.float64)
        z_mid = 0.5 * (v[:, 2].min() + v[:, 2].max())
        lights = lights_in_mesh_frame(size, _camera_distance(mesh, self.camera_distance), z_mid)
        normals = vertex_normals(v, mesh.triangles)
        return lambert_vertex_grey(v, normals, lights, self.light_colours, self.albedo)

    def render(self, mesh: FaceMesh, size: int) -> Rendering:
        v = np.asarray(mesh.vertices, dtype=np.float64)
        t = np.asarray(mesh.triangles, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or not np.isfinite(v).all():
            raise MaskFailure(f"cannot render vertices of shape {v.shape} (or non-finite)")
        if t.ndim != 2 or t.shape[1] != 3:
            raise MaskFailure(f"cannot render triangles of shape {t.shape}")
        if len(t) and (t.min() < 0 or t.max() >= len(v)):
            raise MaskFailure("triangle index out of range")
        tri, bary, depth = rasterize(v, t, size)
        coverage = tri >= 0
        image = np.ones((size, size), dtype=np.float32)
        if len(t):
            grey = self.vertex_grey(mesh, size)
            corner = grey[t[tri[coverage]]]  # N x 3 vertex greys of the winning triangles
            shade = np.einsum("ij,ij->i", bary[coverage], corner)
            image[coverage] = np.clip(shade, 0.0, 1.0)
            if self.overdraw:
                self._overdraw(mesh, size, grey, tri, depth, image, coverage)
        image = (np.round(image.astype(np.float64) * 255.0) / 255.0).astype(np.float32)
        return Rendering(image=np.repeat(image[:, :, None], 3, axis=2), coverage=coverage)

    def _overdraw(
        self,
        mesh: FaceMesh,
        size: int,
        grey: np.ndarray,
        tri: np.ndarray,
        depth: np.ndarray,
        image: np.ndarray,
        coverage: np.ndarray,
    ) -> None:
        """OpenDR's ``overdraw``, in place: the pixels of visible silhouette edges drawn as 1-px
        lines take the colour of OpenDR's line-mode render and count as covered.

        A silhouette fragment is visible unless a filled surface is nearer by more than OpenGL's
        polygon offset (factor 10 × depth slope + 1 depth unit, ``draw_edge_visibility``).
        """
        v = np.asarray(mesh.vertices, dtype=np.float64)
        t = np.asarray(mesh.triangles, dtype=np.int64)
        focal = ORIGINAL_FOCAL * size / ORIGINAL_CROP
        z_lo, z_hi = v[:, 2].min(), v[:, 2].max()
        camera = np.array([size / 2.0, size / 2.0, 0.5 * (z_lo + z_hi) + focal])
        edges, faces = self._edges(t)
        pix, z, value = line_fragments(v, grey, edges[silhouette_edges(v, t, faces, camera)], size)
        if len(pix) == 0:
            return
        k = focal / _camera_distance(mesh, self.camera_distance)
        depth_unit = ((z_hi - z_lo) + 50.0 * k) / 2.0**24  # near/far = depth range ± 25
        flat_tri, flat_depth = tri.ravel(), depth.ravel()
        under = flat_tri[pix]
        offset = np.where(
            under >= 0, 10.0 * depth_slopes(v, t)[np.maximum(under, 0)] + depth_unit, 0.0
        )
        visible = np.unique(pix[z > flat_depth[pix] - offset])
        # The colour there comes from OpenDR's line-mode pass: every triangle edge drawn as a
        # line, the nearest line fragment (largest z) at each pixel.
        pix, z, value = line_fragments(v, grey, edges, size)
        nearest = np.full(size * size, -np.inf)
        np.maximum.at(nearest, pix, z)
        win = np.nonzero(z == nearest[pix])[0]
        first = np.full(size * size, len(z), dtype=np.int64)
        np.minimum.at(first, pix[win], win)
        win = win[first[pix[win]] == win]
        line_colour = np.full(size * size, np.nan)
        line_colour[pix[win]] = value[win]
        colour = line_colour[visible]
        drawn = np.isfinite(colour)
        image.ravel()[visible[drawn]] = np.clip(colour[drawn], 0.0, 1.0)
        coverage.ravel()[visible[drawn]] = True


def _import_opendr() -> tuple[type, type, type]:
    """OpenDR's camera, light and renderer classes.

    OpenDR 0.78's compiled OSMesa context does ``import _constants`` (a Python 2 implicit
    relative import), which fails on Python 3 unless ``opendr/contexts`` is on ``sys.path``;
    we add that folder, and only that, when the first import fails for this reason.
    """
    try:
        from opendr.renderer import ColoredRenderer
    except ModuleNotFoundError as exc:
        if exc.name != "_constants":
            raise
        import importlib.util
        import sys

        spec = importlib.util.find_spec("opendr")
        if spec is None or not spec.submodule_search_locations:
            raise
        contexts = str(Path(next(iter(spec.submodule_search_locations))) / "contexts")
        if contexts not in sys.path:
            sys.path.append(contexts)
        for name in [m for m in sys.modules if m.startswith("opendr.")]:
            if name.startswith(("opendr.renderer", "opendr.contexts")):
                del sys.modules[name]
        from opendr.renderer import ColoredRenderer
    from opendr.camera import ProjectPoints
    from opendr.lighting import LambertianPointLight

    return ProjectPoints, LambertianPointLight, ColoredRenderer


@RENDERERS.register("opendr")
class OpenDRRenderer(Renderer):
    """The original's renderer (OpenDR + OSMesa), for parity checks against ``numpy``.

    The pixel-frame mesh is lifted back into the original's camera frame (focal 50000 · size /
    224, principal point size / 2, mesh at depth ``camera_distance``) so that OpenDR projects
    every vertex onto the pixel it has in ``mesh.vertices``; then the scene of
    ``renderer.simple_renderer`` is built with OpenDR's own classes.
    """

    cpu_only = True  # no GPU code: a "cuda" device plan runs it on the CPU

    name = "opendr"

    def __init__(
        self,
        store: object | None = None,
        device: str = "cpu",
        *,
        camera_distance: float = DEFAULT_CAMERA_DISTANCE,
        albedo: float = ALBEDO,
    ) -> None:
        if check_device(device) != "cpu":
            raise DeviceError("the opendr renderer runs on the CPU (OSMesa) only")
        try:
            ProjectPoints, LambertianPointLight, ColoredRenderer = _import_opendr()
        except Exception as exc:  # ImportError, or OSMesa failing to load
            raise DmbenchError(
                f"the 'opendr' renderer needs OpenDR, which does not import here ({exc}). It is "
                "optional (the default 'numpy' renderer reproduces it). To install it on "
                "Debian/Ubuntu: `apt-get install libosmesa6-dev`; `pip install 'numpy<2' "
                "cython`; `pip install --no-build-isolation opendr==0.78`; then `pip install "
                "--force-reinstall --no-deps chumpy-fixed` (opendr pulls the old chumpy, which "
                "fails on Python 3.11)."
            ) from exc
        self._project_points = ProjectPoints
        self._light = LambertianPointLight
        self._renderer = ColoredRenderer
        self.camera_distance = float(camera_distance)
        self.albedo = float(albedo)

    def render(self, mesh: FaceMesh, size: int) -> Rendering:
        v = np.asarray(mesh.vertices, dtype=np.float64)
        f = np.asarray(mesh.triangles, dtype=np.uint32)
        tz = _camera_distance(mesh, self.camera_distance)
        focal = ORIGINAL_FOCAL * size / ORIGINAL_CROP
        k = focal / tz
        centre = size / 2.0
        z_mid = 0.5 * (v[:, 2].min() + v[:, 2].max())
        depth = tz - (v[:, 2] - z_mid) / k  # camera-frame Z (away from the camera)
        cam_v = np.column_stack(
            ((v[:, 0] - centre) * depth / focal, (v[:, 1] - centre) * depth / focal, depth)
        )

        rn = self._renderer()
        rn.camera = self._project_points(
            rt=np.zeros(3), t=np.zeros(3), f=focal * np.ones(2), c=np.full(2, centre), k=np.zeros(5)
        )
        near = max(depth.min() - 25.0, 0.1)  # SMPLRenderer.__call__'s near and far
        far = max(depth.max() + 25.0, 25.0)
        rn.frustum = {"near": near, "far": far, "height": size, "width": size}
        rn.set(v=cam_v, f=f, vc=np.full(3, self.albedo), bgcolor=np.ones(3))
        albedo = rn.vc
        shaded = None
        for position, colour in zip(rotated_light_positions(), LIGHT_COLOURS, strict=True):
            light = self._light(
                f=rn.f,
                v=rn.v,
                num_verts=len(rn.v),
                light_pos=position,
                vc=albedo,
                light_color=np.full(3, colour),
            )
            shaded = light if shaded is None else shaded + light
        rn.vc = shaded
        image = np.asarray(rn.r, dtype=np.float64).reshape(size, size, 3)
        covered = np.asarray(rn.visibility_image).reshape(size, size) != 4294967295
        if getattr(rn, "overdraw", False):
            covered |= np.asarray(rn.boundarybool_image).reshape(size, size).astype(bool)
        image = np.clip(image, 0.0, 1.0).astype(np.float32)
        image[~covered] = 1.0
        return Rendering(image=image, coverage=covered)

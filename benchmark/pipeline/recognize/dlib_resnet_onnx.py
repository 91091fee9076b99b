"""``dlib-resnet-onnx``: dlib's face descriptor network on onnxruntime, same model file.

Detection and landmarks are dlib's own, exactly as ``dlib-resnet`` (``DlibFaces``); the
150×150 face chip is dlib's own too (``dlib.get_face_chips`` with the padding 0.25 that
``compute_face_descriptor`` uses). Only the network runs elsewhere: the weights are read
from ``dlib_face_recognition_resnet_model_v1.dat`` by ``dlib_dnn`` (our reader, checked
against dlib's architecture) and run as an ONNX graph built in memory, in batches, on the
CPU or, through onnxruntime-gpu, on CUDA.

Measured against ``dlib-resnet`` on LFW-dev (``test_dlib_resnet_onnx.py``): descriptors
agree to a few 1e-7 (float32 summation order) and every scenario makes the same rank
decisions; the descriptor costs about 5 ms per face on one CPU core instead of 115 ms.
``dlib-resnet`` stays the reference backend.
"""

from __future__ import annotations

import numpy as np

from benchmark.assets import AssetStore
from benchmark.device import check_session_device, onnx_providers, onnx_session_options
from benchmark.pipeline.recognize.dlib_dnn import normalise_chips, read_network, to_onnx
from benchmark.pipeline.recognize.dlib_resnet import ASSET, RESNET, DlibFaces
from benchmark.pipeline.recognize.types import EMBEDDERS, Embedder

CHIP_PADDING = 0.25  # compute_face_descriptor's default


@EMBEDDERS.register("dlib-resnet-onnx")
class DlibResNetOnnxEmbedder(DlibFaces, Embedder):
    name = "dlib-resnet-onnx"

    def __init__(self, store: AssetStore, device: str = "cpu", batch_size: int = 32) -> None:
        self._providers = onnx_providers(device)  # checks the device, loudly for CUDA
        super().__init__(store, batch_size)
        self.device = device
        self._network_path = store.file(ASSET, RESNET)

    models = (*DlibFaces.models, "network", "session")

    def load_models(self) -> None:
        import onnxruntime as ort

        super().load_models()
        self.network = read_network(self._network_path)
        self.session = ort.InferenceSession(
            to_onnx(self.network), onnx_session_options(), providers=self._providers
        )
        check_session_device(self.session, self.device, self.name)

    def chips(self, images: list[np.ndarray], shapes: list) -> np.ndarray:
        """dlib's 150×150 face chips (N×150×150×3 uint8) of the images at their shapes."""
        dlib = self._dlib
        out = []
        for rgb, shape in zip(images, shapes, strict=True):
            detections = dlib.full_object_detections()
            detections.append(shape)
            out.append(dlib.get_face_chips(rgb, detections, size=150, padding=CHIP_PADDING)[0])
        return np.stack([np.asarray(chip, dtype=np.uint8) for chip in out])

    def descriptors_of_chips(self, chips: np.ndarray) -> np.ndarray:
        """The network on N×150×150×3 uint8 chips: N×128 float32."""
        feed = {"chips": normalise_chips(chips, self.network)}
        return self.session.run(["descriptor"], feed)[0]

    def descriptors(self, images: list[np.ndarray], shapes: list) -> list[np.ndarray]:
        return list(self.descriptors_of_chips(self.chips(images, shapes)))

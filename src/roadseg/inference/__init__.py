"""Inference: the Predictor (pre- and postprocessing once, around any engine), the engines (eager
PyTorch, the Winograd network, onnxruntime, OpenVINO), files and videos in and masks out, export
(slim .pt, ONNX, INT8) and the Keras bridge.

Usage::

    from roadseg.inference import Predictor
    predictor = Predictor.from_checkpoint("camvid")
    ids = predictor.predict(rgb_uint8)
"""
from .engines import BACKENDS, Engine, make_engine
from .predictor import Predictor
from .processing import Preprocess

__all__ = ["BACKENDS", "Engine", "Predictor", "Preprocess", "make_engine"]

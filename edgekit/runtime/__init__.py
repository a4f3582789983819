"""The device side: run a bundle with LiteRT and OpenCV, no TensorFlow.

Modules, in the order data flows:

- ``backends``: the TFLite interpreter (ai_edge_litert → tflite_runtime → tensorflow.lite)
- ``accelerators`` + ``engines``: which artifact runs on what, and the fallback policy
- ``sources``: cameras, streams, video files, images
- ``pipeline``: :class:`Predictor` (preprocess → quantize → invoke → dequantize → top-k)
- ``outputs``: JSON Lines, annotated video, window, console line
- ``stats``: percentiles and run summaries (shared with the benchmarks)
- ``deploy``: one run end to end; ``doctor``: what this device can do

Nothing here imports TensorFlow or the build side (a test enforces it).

Example::

    from edgekit.runtime import Predictor
    p = Predictor.from_bundle("bundle/")
    print(p.predict("cat.jpg").topk)
"""
from edgekit.runtime.accelerators import Plan, find_library
from edgekit.runtime.backends import BACKEND_NAMES, LoadedBackend, select_backend
from edgekit.runtime.deploy import DeployResult, deploy
from edgekit.runtime.doctor import diagnose
from edgekit.runtime.outputs import JsonlWriter, OutputError, VideoSaver
from edgekit.runtime.pipeline import FrameResult, Prediction, Predictor
from edgekit.runtime.sources import Frame, ImageSource, LiveSource, ReconnectPolicy, Source, VideoFileSource, open_source
from edgekit.runtime.stats import RunStats, StageSamples, summarize
from edgekit.runtime.tensors import TensorInfo, dequantize, quantize, run_batch, softmax

__all__ = [
    "BACKEND_NAMES",
    "DeployResult",
    "Frame",
    "FrameResult",
    "ImageSource",
    "JsonlWriter",
    "LiveSource",
    "LoadedBackend",
    "OutputError",
    "Plan",
    "Prediction",
    "Predictor",
    "ReconnectPolicy",
    "RunStats",
    "Source",
    "StageSamples",
    "TensorInfo",
    "VideoFileSource",
    "VideoSaver",
    "deploy",
    "dequantize",
    "diagnose",
    "find_library",
    "open_source",
    "quantize",
    "run_batch",
    "select_backend",
    "softmax",
    "summarize",
]

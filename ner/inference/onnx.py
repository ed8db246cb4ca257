"""ONNX Runtime backend: the encoder and emission layer as one ONNX graph, decoded by the heads' own code.

The graph maps `input_ids`, `attention_mask` (windows, subwords) and `word_index` (windows, words) to the
window emissions (windows, words, labels) that `NerTagger.forward` returns in eval mode. Everything around
it stays the code the torch backend runs: tokenization, windows, merging windows into sentences and the
head's decoding and confidences (`NerTagger.decode_batch(batch, window_emissions=...)`). So the checkpoint
is still loaded (head, labels, tokenizer, windowing); only the encoder's forward pass is swapped.

A graph carries a fingerprint of the weights it was exported from (ONNX metadata); a session refuses a
checkpoint with other weights, instead of decoding one model's emissions with another model's head.

    python -m ner export --ckpt last.ckpt --out DIR --onnx [--int8]     # DIR/model.onnx, DIR/model.int8.onnx
    python -m ner predict --ckpt last.ckpt --backend onnx --onnx-model DIR/model.onnx text.txt
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn

from ner.errors import NerError

FILE, INT8_FILE = "model.onnx", "model.int8.onnx"  # names inside an export folder
INPUTS = ("input_ids", "attention_mask", "word_index")
FORMAT = "ner-emissions-1"  # metadata `format`: what a session checks before trusting a graph
BACKENDS = ("torch", "onnx")
OPSET = 17  # ONNX opset of the export (LayerNormalization is an ONNX op from 17 on)


class EmissionGraph(nn.Module):
    """What is exported: `NerTagger.forward` in eval mode (no dropout), float32, no autocast."""

    def __init__(self, encoder: nn.Module, emissions: nn.Linear) -> None:
        super().__init__()
        self.encoder, self.emissions = encoder, emissions

    def forward(self, input_ids: Tensor, attention_mask: Tensor, word_index: Tensor) -> Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # (windows, subwords, hidden) -> each word's first subword: (windows, words, hidden)
        index = word_index.unsqueeze(-1).expand(-1, -1, states.size(-1))
        return self.emissions(states.gather(1, index))  # (windows, words, labels)


def fingerprint(model: nn.Module) -> str:
    """sha256 over the names, shapes and bytes of the encoder's and emission layer's weights: the same
    checkpoint always gives the same value, any retrained or edited weight another."""
    digest = hashlib.sha256()
    for part in ("encoder", "emissions"):
        for name, tensor in sorted(getattr(model, part).state_dict().items()):
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{part}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@contextmanager
def _quiet_export() -> Iterator[None]:
    """torch.onnx warns about torchvision ops and axis names on every export, onnxruntime's quantizer (on the
    root logger) suggests a pre-processing step on every call: not news to whoever exports."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", None)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _save_atomic(proto, path: Path) -> Path:
    """Write the model proto beside `path`, then rename it over `path` (a crash leaves no partial graph)."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        onnx.save_model(proto, tmp)  # one file: protobuf holds up to 2 GB (BERT-base is 0.44 GB)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _set_metadata(proto, metadata: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def metadata_of(model, source: str | Path | None = None) -> dict[str, str]:
    """What a graph says about its checkpoint: the fingerprint (checked), the rest for people."""
    hparams = model.hparams
    return {
        "format": FORMAT,
        "fingerprint": fingerprint(model),
        "checkpoint": str(source or ""),
        "labels": json.dumps(list(model.labels)),
        "head": str(hparams.get("head")),
        "max_length": str(hparams.get("max_length", 128)),
        "stride": str(hparams.get("stride")),
        "quantization": "none",
    }


def export_onnx(model, path: str | Path, source: str | Path | None = None) -> Path:
    """Write the model's encoder + emission layer (a `NerTagger`, float32) as an ONNX graph at `path`.

    `torch.onnx.export(dynamo=False)`, the TorchScript exporter, opset 17; windows, subwords and words are
    dynamic axes. Why not dynamo=True: its graph of the same weights ran 20-25% slower in ONNX Runtime (CPU,
    MiniLM, 1 and 2 threads), since ONNX Runtime's own fusions match the TorchScript exporter's patterns; the
    emissions agree with torch to ~1e-5 either way. `source` (the checkpoint's path) is in the metadata.
    """
    import onnx

    if getattr(model, "inference_precision", "32") != "32":
        raise NerError("export the float32 model: ONNX int8 is `--int8` (onnxruntime's own quantization)")
    graph = EmissionGraph(model.encoder, model.emissions).cpu().eval()
    # example inputs: distinct sizes > 1, so that no axis is specialised to a constant while tracing
    input_ids = torch.full((2, 7), 100, dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0
    word_index = torch.tensor([[1, 2, 4], [1, 3, 0]])
    axes = {
        "input_ids": {0: "windows", 1: "subwords"},
        "attention_mask": {0: "windows", 1: "subwords"},
        "word_index": {0: "windows", 1: "words"},
        "emissions": {0: "windows", 1: "words"},
    }
    buffer = io.BytesIO()
    with _quiet_export(), torch.no_grad():
        try:
            torch.onnx.export(
                graph,
                (input_ids, attention_mask, word_index),
                buffer,
                input_names=list(INPUTS),
                output_names=["emissions"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        except Exception as error:  # the tracer cannot export every encoder family; say which and why
            first = (str(error).strip().splitlines() or [""])[0][:300]
            raise NerError(
                f"ONNX export of the {type(model.encoder).__name__} encoder failed: {first}"
            ) from None
    proto = onnx.load_model_from_string(buffer.getvalue())
    _set_metadata(proto, metadata_of(model, source))
    onnx.checker.check_model(proto)
    return _save_atomic(proto, Path(path))


def quantize_int8(source: str | Path, path: str | Path) -> Path:
    """An int8 copy of an exported graph (`onnxruntime.quantization.quantize_dynamic`: int8 weights of
    MatMul/Gemm, activations quantized per batch at run time), its metadata kept and marked `int8`.

    Approximate (see the README's benchmark figures for its F1 cost); never the default."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source, path = Path(source), Path(path)
    metadata = read_metadata(source)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch, _quiet_export():
        out = Path(scratch) / INT8_FILE
        # the TorchScript exporter records no intermediate types: the quantizer is told they are float
        extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
        quantize_dynamic(source, out, weight_type=QuantType.QInt8, extra_options=extra)
        proto = onnx.load_model(out)
    _set_metadata(proto, {**metadata, "quantization": "int8 (onnxruntime quantize_dynamic, QInt8 weights)"})
    return _save_atomic(proto, path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of one of our graphs; a NerError naming the file when it is not one."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise NerError(f"{path}: ONNX model not found")
    try:
        proto = onnx.load_model(path, load_external_data=False)
    except Exception as error:  # DecodeError and friends: whatever it is, it is not a model we wrote
        raise NerError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    metadata = {entry.key: entry.value for entry in proto.metadata_props}
    if metadata.get("format") != FORMAT:
        raise NerError(f"{path}: an ONNX model, but not one exported by `python -m ner export --onnx`")
    return metadata


class OnnxEmissions:
    """An ONNX Runtime session that computes window emissions for `Predictor`, in place of the encoder.

    Checks that the graph was exported from `model`'s weights (its fingerprint). Threads: ONNX Runtime's
    intra-op pool gets `torch.get_num_threads()` at creation, so whoever sets torch's threads (a tag worker,
    `--threads`) sets both; its threads do not spin while waiting (torch runs the decoding in between).
    CUDAExecutionProvider when `device` is CUDA and onnxruntime has it, else CPU.
    """

    def __init__(self, path: str | Path, model, device: str | torch.device = "cpu") -> None:
        import onnxruntime as ort

        self.path, self.device = Path(path), torch.device(device)
        self.metadata = read_metadata(self.path)
        expected = fingerprint(model)
        if self.metadata.get("fingerprint") != expected:
            raise NerError(
                f"{self.path}: exported from other weights (checkpoint {self.metadata.get('checkpoint')!r},"
                f" fingerprint {self.metadata.get('fingerprint', '?')[:12]}, this checkpoint's"
                f" {expected[:12]}); export this one: python -m ner export --ckpt CKPT --out DIR --onnx"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1  # one graph at a time: parallelism is within operators
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between runs: spinning pool threads took the cores from the head's torch decoding
        # between batches (2x slower decoding on a shared 2-core CPU) and slowed the graph ~20% there
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only (ORT warns about unused initializers, say)
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            else:
                print(
                    "note: onnxruntime has no CUDA provider here: the ONNX graph runs on CPU", file=sys.stderr
                )
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        names = tuple(i.name for i in self.session.get_inputs())
        if sorted(names) != sorted(INPUTS):
            raise NerError(f"{self.path}: graph inputs {list(names)}, expected {list(INPUTS)}")

    @property
    def quantized(self) -> bool:
        return self.metadata.get("quantization", "none") != "none"

    def __call__(self, batch: dict) -> Tensor:
        """Window emissions (windows, words, labels) of a `collate`d batch: float32, on `device`."""
        feeds = {name: batch[name].cpu().numpy() for name in INPUTS}  # int64, (windows, subwords|words)
        (emissions,) = self.session.run(None, feeds)
        return torch.from_numpy(emissions).to(self.device)


def onnx_session(
    model, onnx_model: str | Path | None = None, device: str | torch.device = "cpu", source: str | None = None
) -> OnnxEmissions:
    """A session over `onnx_model`; without one, the model is exported to a temporary folder first (a note
    on stderr says so: exporting takes seconds to a minute, `python -m ner export --onnx` keeps it)."""
    if onnx_model is not None:
        return OnnxEmissions(onnx_model, model, device)
    with tempfile.TemporaryDirectory(prefix="ner-onnx-") as folder:
        path = Path(folder) / FILE
        print(
            f"note: no --onnx-model given: exporting the checkpoint's graph to {path} for this run"
            " (python -m ner export --ckpt CKPT --out DIR --onnx saves it for reuse)",
            file=sys.stderr,
        )
        export_onnx(model, path, source)
        return OnnxEmissions(path, model, device)  # ONNX Runtime has read the file: the folder can go

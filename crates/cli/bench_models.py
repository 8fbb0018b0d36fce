"""PyTorch twins of the models `profundo bench models` times (crates/cli/bench_workloads.rs).

Same layer sizes, batch sizes, losses and optimizers as profundo's pipelines; synthetic
inputs of the same shapes. `profundo bench models` runs this file as a persistent worker,
one process per model (so the peak memory printed is that model's alone), and talks to it
over a pipe, one JSON object per line:

    python -c "$(cat bench_models.py)" --model speech-cnn --threads 2 --device cpu

- it prints {"reply": "ready", "measures": [{"measure", "batch"}, ...]} once the model is
  built;
- to {"cmd": "time", "measure": "train step", "calls": k} it runs k calls and prints
  {"reply": "times", "ms": [...]} (call order);
- to {"cmd": "quit"} (or end of input) it prints {"reply": "done", "peak_mib", "gpu_peak_mib",
  "device_name", "pinned"} and exits.

On CUDA every timed call ends with torch.cuda.synchronize(), as profundo's end with a
device sync. The process pins itself to the first `--threads` CPUs it may use, as the
profundo worker does.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SPEECH_SHAPE, SPEECH_CLASSES, SPEECH_BATCH = (1, 13, 48), 10, 64
FACES_SHAPE, FACES_PEOPLE, FACES_BATCH = (1, 56, 46), 40, 32
VOCAB, MT_BATCH, MT_LEN = 8000, 128, 12
MF_USERS, MF_ITEMS, MF_FACTORS, MF_BATCH = 943, 1682, 64, 512
SIGNS_SHAPE, SIGNS_CLASSES, SIGNS_BATCH = (3, 32, 32), 43, 64

# Where tensors and models live (--device).
DEVICE = torch.device("cpu")


def timed(fn, calls):
    """Call times in ms, in call order; each call waited on until the device finished."""
    xs = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        if DEVICE.type == "cuda":
            torch.cuda.synchronize(DEVICE)
        xs.append((time.perf_counter() - t) * 1e3)
    return xs


def inference(fn):
    """`fn` without autograd bookkeeping, as profundo's inference devices run."""

    def call():
        with torch.inference_mode():
            fn()

    return call


# Speech: profundo_core::model::ConvClassifier (temporal: MFCC rows as channels).
class ConvClassifier(nn.Module):
    def __init__(self, shape, channels, kernel, classes, dropout, temporal):
        super().__init__()
        c, h, _ = shape
        prev = c * h if temporal else c
        pad = kernel // 2
        blocks = []
        for k, ch in enumerate(channels):
            if temporal:
                conv = nn.Conv2d(prev, ch, (1, kernel), padding=(0, pad), bias=False)
                pool = (1, 2)
            else:
                conv = nn.Conv2d(prev, ch, kernel, padding=pad, bias=False)
                pool = (2, 2)
            layers = [conv, nn.BatchNorm2d(ch), nn.ReLU()]
            if k + 1 < len(channels):
                layers.append(nn.MaxPool2d(pool, pool))
            blocks.append(nn.Sequential(*layers))
            prev = ch
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(prev, classes)
        self.temporal = temporal

    def forward(self, x):
        if self.temporal:
            b, c, h, w = x.shape
            x = x.reshape(b, c * h, 1, w)
        x = self.pool(self.blocks(x)).flatten(1)
        return self.head(self.dropout(x))

    def train_logits(self, x, y):
        return self(x)


# Faces: profundo_faces::model::{EmbeddingNet, MarginModel} (CosFace).
def l2_normalize(x):
    return x / (x.pow(2).sum(1, keepdim=True) + 1e-12).sqrt()


class Residual(nn.Module):
    def __init__(self, i, o, pool):
        super().__init__()
        self.conv1 = nn.Conv2d(i, o, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(o)
        self.conv2 = nn.Conv2d(o, o, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(o)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o)) if i != o else None
        )
        self.pool = nn.MaxPool2d(2, 2) if pool else None

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        skip = self.shortcut(x) if self.shortcut is not None else x
        y = F.relu(y + skip)
        return self.pool(y) if self.pool is not None else y


class EmbeddingNet(nn.Module):
    def __init__(self, shape, channels=(16, 32, 64, 128), dim=128, dropout=0.2):
        super().__init__()
        prev = shape[0]
        stages = []
        for k, ch in enumerate(channels):
            stages.append(Residual(prev, ch, k + 1 < len(channels)))
            prev = ch
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(prev, dim)
        self.norm = nn.BatchNorm1d(dim)

    def embed(self, x):
        x = self.pool(self.stages(x)).flatten(1)
        return l2_normalize(self.norm(self.fc(self.dropout(x))))

    def embed_eval(self, x):
        b = x.shape[0]
        both = self.embed(torch.cat([x, x.flip(3)], 0))
        return l2_normalize(both[:b] + both[b:])


class MarginModel(nn.Module):
    def __init__(self, net, dim, classes, scale=16.0, margin=0.2):
        super().__init__()
        self.net = net
        self.weight = nn.Parameter(torch.empty(classes, dim))
        nn.init.xavier_uniform_(self.weight)
        self.scale, self.margin = scale, margin

    def train_logits(self, x, y):
        cos = self.net.embed(x) @ l2_normalize(self.weight).t()
        onehot = F.one_hot(y, cos.shape[1]).float()
        out = cos + ((cos - self.margin) - cos) * onehot
        return out * self.scale


def classifier(model, shape, batch, classes, smoothing, infer):
    """The measures of a classifier: {measure: (items, mode, call)}."""
    model.to(DEVICE)
    x = torch.randn(batch, *shape, device=DEVICE)
    y = torch.arange(batch, device=DEVICE) % classes
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model.train_logits(x, y), y, label_smoothing=smoothing)
        loss.item()
        loss.backward()
        opt.step()

    x1 = torch.randn(1, *shape, device=DEVICE)
    xb = torch.randn(batch, *shape, device=DEVICE)
    return {
        "train step": (batch, model.train, step),
        "infer 1": (1, model.eval, inference(lambda: infer(x1))),
        "infer batch": (batch, model.eval, inference(lambda: infer(xb))),
    }


# Perception: profundo_perception::model::SignNet (contrast normalisation, stages of
# conv-BN-ReLU then 2x2 max pooling, a head on the flattened last map).
class SignNet(nn.Module):
    def __init__(self, channels=(32, 64, 128), convs=2, classes=SIGNS_CLASSES, dropout=0.3, size=32):
        super().__init__()
        layers, prev = [], 3
        for ch in channels:
            for k in range(convs):
                layers += [nn.Conv2d(prev if k == 0 else ch, ch, 3, padding=1, bias=False),
                           nn.BatchNorm2d(ch), nn.ReLU()]
            layers.append(nn.MaxPool2d(2, 2))
            prev = ch
        self.features = nn.Sequential(*layers)
        side = size >> len(channels)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(prev * side * side, classes)

    def forward(self, x):
        flat = x.flatten(1)
        var, mean = torch.var_mean(flat, 1, keepdim=True, unbiased=False)
        x = ((flat - mean) / (var + 1e-4).sqrt()).reshape(x.shape)
        return self.head(self.dropout(self.features(x).flatten(1)))

    def train_logits(self, x, y):
        return self(x)


# Translation: profundo_translate::model::Seq2Seq (pre-norm, GELU, tied embedding).
def sinusoids(length, d):
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(length, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class Seq2Seq(nn.Module):
    def __init__(self, vocab=VOCAB, d=256, heads=4, ff=1024, enc=3, dec=3, dropout=0.1, max_len=128):
        super().__init__()
        self.d = d
        self.embedding = nn.Embedding(vocab, d)
        nn.init.normal_(self.embedding.weight, 0.0, d**-0.5)
        layer = lambda cls: cls(
            d, heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer(nn.TransformerEncoderLayer), enc, enable_nested_tensor=False
        )
        self.encoder_norm = nn.LayerNorm(d)
        self.decoder = nn.TransformerDecoder(layer(nn.TransformerDecoderLayer), dec)
        self.decoder_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("positions", sinusoids(max_len, d))

    def embed(self, ids):
        x = self.embedding(ids) * math.sqrt(self.d)
        return self.dropout(x + self.positions[: ids.shape[1]])

    def encode(self, src, pad):
        return self.encoder_norm(self.encoder(self.embed(src), src_key_padding_mask=pad))

    def forward(self, memory, pad, target_in):
        t = target_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=target_in.device)
        h = self.decoder(
            self.embed(target_in),
            memory,
            tgt_mask=causal,
            tgt_is_causal=True,
            memory_key_padding_mask=pad,
        )
        return self.decoder_norm(h) @ self.embedding.weight.t()


def transformer():
    model = Seq2Seq().to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def batch(n):
        src = torch.randint(8, VOCAB, (n, MT_LEN), device=DEVICE)
        tgt = torch.randint(8, VOCAB, (n, MT_LEN), device=DEVICE)
        return src, torch.zeros(n, MT_LEN, dtype=torch.bool, device=DEVICE), tgt

    src, pad, tgt = batch(MT_BATCH)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(model.encode(src, pad), pad, tgt)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt.reshape(-1), label_smoothing=0.1)
        loss.item()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    def infer(n):
        src, pad, tgt = batch(n)
        return inference(lambda: model(model.encode(src, pad), pad, tgt).argmax(-1).cpu())

    return {
        "train step": (MT_BATCH, model.train, step),
        "infer 1": (1, model.eval, infer(1)),
        "infer batch": (MT_BATCH, model.eval, infer(MT_BATCH)),
    }


# Recommendations: profundo_recommend::train::FactorNet (rating model).
class FactorNet(nn.Module):
    def __init__(self, users, items, dim, std):
        super().__init__()
        self.user = nn.Parameter(torch.randn(users, dim) * std)
        self.item = nn.Parameter(torch.randn(items, dim) * std)
        self.user_bias = nn.Parameter(torch.zeros(users))
        self.item_bias = nn.Parameter(torch.zeros(items))

    def predict(self, u, i, g):
        pu, qi = self.user[u], self.item[i]
        bu, bi = self.user_bias[u], self.item_bias[i]
        pred = (pu * qi).sum(1) + bu + bi + g
        reg_f = (pu.pow(2) + qi.pow(2)).sum(1)
        reg_b = bu.pow(2) + bi.pow(2)
        return pred, reg_f, reg_b


def factorisation():
    model = FactorNet(MF_USERS, MF_ITEMS, MF_FACTORS, 0.01).to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    u = torch.randint(0, MF_USERS, (MF_BATCH,), device=DEVICE)
    i = torch.randint(0, MF_ITEMS, (MF_BATCH,), device=DEVICE)
    y = torch.randint(1, 6, (MF_BATCH,), device=DEVICE).float()
    g, reg, reg_bias = 3.5, 0.1, 0.01

    def step():
        opt.zero_grad(set_to_none=True)
        pred, reg_f, reg_b = model.predict(u, i, g)
        data_loss = (pred - y).pow(2).mean()
        data_loss.item()
        loss = data_loss + reg_f.mean() * reg + reg_b.mean() * reg_bias
        loss.backward()
        opt.step()

    # The app's top-10 for one user over the catalogue.
    def top10():
        scores = model.item @ model.user[17] + model.item_bias + model.user_bias[17] + g
        return torch.topk(scores, 10)

    ub = torch.randint(0, MF_USERS, (MF_BATCH,), device=DEVICE)
    ib = torch.randint(0, MF_ITEMS, (MF_BATCH,), device=DEVICE)
    return {
        "train step": (MF_BATCH, model.train, step),
        "infer 1": (1, model.eval, inference(top10)),
        "infer batch": (MF_BATCH, model.eval, inference(lambda: model.predict(ub, ib, g)[0])),
    }


def prepare(name):
    if name == "speech-cnn":
        m = ConvClassifier(SPEECH_SHAPE, (32, 64, 128), 5, SPEECH_CLASSES, 0.3, True)
        return classifier(m, SPEECH_SHAPE, SPEECH_BATCH, SPEECH_CLASSES, 0.1, m)
    if name == "faces-resnet":
        net = EmbeddingNet(FACES_SHAPE)
        m = MarginModel(net, 128, FACES_PEOPLE)
        return classifier(m, FACES_SHAPE, FACES_BATCH, FACES_PEOPLE, 0.0, net.embed_eval)
    if name == "translate-transformer":
        return transformer()
    if name == "recommend-mf":
        return factorisation()
    if name == "signs-cnn":
        m = SignNet()
        return classifier(m, SIGNS_SHAPE, SIGNS_BATCH, SIGNS_CLASSES, 0.0, m)
    raise SystemExit(f"unknown model {name!r}")


def pin(threads):
    """Pins this process to the first `threads` CPUs it may use; those CPUs, or None."""
    try:
        cpus = sorted(os.sched_getaffinity(0))[:threads]
        if len(cpus) < threads:
            return None
        os.sched_setaffinity(0, cpus)
        return cpus
    except (AttributeError, OSError):
        return None


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = p.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    pinned = pin(a.threads)
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(7)
    measures = prepare(a.model)
    say({"reply": "ready", "measures": [{"measure": m, "batch": v[0]} for m, v in measures.items()]})
    mode = None
    for line in sys.stdin:
        req = json.loads(line)
        if req["cmd"] == "quit":
            break
        _, set_mode, call = measures[req["measure"]]
        if mode is not set_mode:
            set_mode()
            mode = set_mode
        say({"reply": "times", "ms": timed(call, req["calls"])})
    cuda = DEVICE.type == "cuda"
    say(
        {
            "reply": "done",
            "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "gpu_peak_mib": torch.cuda.max_memory_reserved(DEVICE) / 2**20 if cuda else None,
            "device_name": torch.cuda.get_device_name(DEVICE) if cuda else None,
            "pinned": pinned,
        }
    )


if __name__ == "__main__":
    main()

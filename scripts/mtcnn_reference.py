"""Writes the MTCNN parity fixture: facenet-pytorch 2.6.0's detections (boxes, scores, five
landmarks) on the shipped photos (datasets/face-photos) and, when the data folder holds
them, the dlib detection photos (faces/detection-dlib). The Rust tests hold profundo's
detector to these numbers (crates/faces/src/detect/tests.rs and tests/faces_detect.rs).

Usage: python mtcnn_reference.py REPO DATA_DIR OUT_JSON  (scripts/mtcnn-reference.sh sets up
the Python environment and runs this.)
"""
import json
import os
import sys

import torch
from facenet_pytorch import MTCNN
from PIL import Image

repo, data, out = sys.argv[1:4]
torch.set_num_threads(1)
mtcnn = MTCNN(keep_all=True)  # defaults: min face 20, thresholds 0.6/0.7/0.7, factor 0.709


def detect(path):
    img = Image.open(path).convert("RGB")
    boxes, probs, points = mtcnn.detect(img, landmarks=True)
    faces = []
    if boxes is not None:
        for b, p, l in zip(boxes, probs, points):
            faces.append({
                "box": [round(float(v), 3) for v in b],
                "score": round(float(p), 6),
                "landmarks": [[round(float(x), 3), round(float(y), 3)] for x, y in l],
            })
    return {"width": img.width, "height": img.height, "faces": faces}


photos = []
shipped = os.path.join(repo, "datasets", "face-photos")
for name in sorted(os.listdir(shipped)):
    if name.endswith(".png"):
        photos.append({"root": "repo", "path": f"datasets/face-photos/{name}",
                       **detect(os.path.join(shipped, name))})
dlib = os.path.join(data, "faces", "detection-dlib")
if os.path.isdir(dlib):
    for name in sorted(os.listdir(dlib)):
        if name.endswith(".jpg"):
            photos.append({"root": "data", "path": f"faces/detection-dlib/{name}",
                           **detect(os.path.join(dlib, name))})

generator = (f"facenet-pytorch 2.6.0, torch {torch.__version__}: "
             "MTCNN(keep_all=True).detect(img, landmarks=True)")
with open(out, "w") as f:  # one photo per line
    f.write('{"generator": ' + json.dumps(generator) + ',\n "photos": [\n  ')
    f.write(",\n  ".join(json.dumps(p) for p in photos))
    f.write("\n]}\n")
print(f"{out}: {sum(len(p['faces']) for p in photos)} faces in {len(photos)} photos")

"""Makes datasets/face-photos/ from two public-domain photographs.

- grace_hopper.png: Commodore Grace M. Hopper, US Navy official photograph (public domain),
  as matplotlib ships it (mpl-data/sample_data/grace_hopper.jpg, from Wikimedia Commons
  File:Grace_Hopper.jpg), decoded by Pillow and stored losslessly.
- astronaut.png: astronaut Eileen Collins, NASA (public domain), as scikit-image ships it
  (skimage/data/astronaut.png), re-compressed losslessly.
- pair.png: both photos scaled and placed at known positions on a 640x480 grey canvas,
  the astronaut's on the left at 0.6x, Grace Hopper's on the right at 0.5x: two faces
  of different sizes in one frame.

All three are PNG so that every decoder reads the same pixels: JPEG decoders differ by a
grey level here and there, enough to move a detection by a few pixels, and the parity test
against the reference MTCNN should measure the detector, not the decoder.

Usage: python face_photos.py GRACE_HOPPER_JPG ASTRONAUT_PNG OUT_DIR
(the two files come from `pip download --no-deps matplotlib==3.11.2 scikit-image==0.26.0`;
unzip them from the wheels.)
"""
import sys

from PIL import Image

hopper_src, astronaut_src, out = sys.argv[1:4]
hopper = Image.open(hopper_src).convert("RGB")
hopper.save(f"{out}/grace_hopper.png", optimize=True)
astronaut = Image.open(astronaut_src).convert("RGB")
astronaut.save(f"{out}/astronaut.png", optimize=True)

canvas = Image.new("RGB", (640, 480), (128, 128, 128))
a = astronaut.resize((307, 307), Image.BILINEAR)
h = hopper.resize((256, 300), Image.BILINEAR)
canvas.paste(a, (16, 120))
canvas.paste(h, (360, 40))
canvas.save(f"{out}/pair.png", optimize=True)

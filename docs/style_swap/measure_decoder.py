"""Measures the shipped decoder on the sample photo: reconstruction (strength 0) and how well one
pass carries the swapped relu3_1 features.   PYTHONPATH=. python docs/style_swap/measure_decoder.py"""
import torch, skimage
from pathlib import Path
torch.set_num_threads(1)
from pytexsynth import style_swap_transfer, VGG19
from pytexsynth.cli import demo_inputs
from pytexsynth.io import load_image, resize_image
from pytexsynth.synthesis.style_swap import swap_target
vgg = VGG19(("relu3_1",))
def err(img, t):
    with torch.no_grad(): f = vgg(img, ("relu3_1",))["relu3_1"]
    return float((f-t).square().mean()/t.square().mean())
for label, c in (("sample chelsea 128x85", load_image(demo_inputs()["chelsea"])),
                 ("skimage chelsea 256", load_image(Path(skimage.__file__).parent/"data"/"chelsea.png", size=256))):
    for sname in ("brick", "coffee"):
        s = load_image(demo_inputs()[sname])
        with torch.no_grad():
            t = swap_target(vgg(c,("relu3_1",))["relu3_1"], vgg(s,("relu3_1",))["relu3_1"])
        plain = style_swap_transfer(c, s, method="inverse", strength=0.0, device="cpu")
        out = style_swap_transfer(c, s, method="inverse", device="cpu")
        print(f"{label} / {sname}: |decoded content - content| = {float((plain-c).abs().mean()):.4f}; swap error: content {err(c,t):.3f}, one pass {err(out,t):.3f}")

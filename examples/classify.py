import json, sys
import numpy as np, onnxruntime as ort
from PIL import Image

session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
pre, classes = json.loads(meta["preprocess"]), json.loads(meta["class_names"])
for path in sys.argv[2:]:
    image = Image.open(path).convert(pre["colour_mode"]).resize(pre["resize"]["size_wh"], Image.Resampling.BILINEAR)
    x = np.asarray(image, dtype=np.uint8).reshape(1, *pre["size_hw"], -1)  # NHWC pixels
    if pre["dtype"] == "float32":  # else the model scales uint8 pixels itself (hwnas export --raw-input)
        x = ((x.astype(np.float32) / pre["scaling"]["pixel_max"] - 0.5) / 0.5).transpose(0, 3, 1, 2)
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    print(path, classes[int(logits.argmax())])

"""A completed training run's misclassified test images, for its page: computed in a process
of its own (never the web server's).

``python -m convbench.server.mistakes`` reads ``{"store": URL, "run": ID}`` on stdin, takes
the run's test-set predictions (:func:`convbench.analysis.runs.predictions`: the stored ones,
or computed once with its best weights and recorded), reloads its test split and prints up
to :data:`SHOWN` wrongly classified images as PNG data URLs with their true and predicted
classes and the confidence of the prediction, most confident mistakes first.
"""

from __future__ import annotations

import base64
import io
import json
import sys

SHOWN = 32
MIN_SIDE = 72  # small images (digits: 8 px) are enlarged, pixels kept sharp


def png_url(image) -> str:
    """A uint8 C×H×W tensor as a PNG data URL, enlarged to at least :data:`MIN_SIDE` px."""
    from PIL import Image

    array = image.numpy()
    pil = Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0))
    scale = max(1, -(-MIN_SIDE // max(pil.size)))
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def mistakes(store_url: str, run_id: str) -> dict:
    """``{"total": wrong, "tested": n, "images": [{"src", "true", "pred", "confidence"}]}``."""
    from ..analysis.runs import predictions, run_config
    from ..data import load_data
    from ..store import Store

    with Store(store_url) as store:
        run = store.get_run(store.resolve_id(run_id))
        preds = predictions(store, run)
    cfg = run_config(run)
    bundle = load_data(cfg.data, cfg.train.seed)
    predicted = preds.probs.argmax(1)
    wrong = [i for i in range(len(preds.y)) if predicted[i] != preds.y[i]]
    wrong.sort(key=lambda i: -float(preds.probs[i, predicted[i]]))
    names = preds.classes
    return {"total": len(wrong), "tested": len(preds.y), "images": [
        {"src": png_url(bundle.test.x[i]), "true": names[int(preds.y[i])],
         "pred": names[int(predicted[i])], "confidence": float(preds.probs[i, predicted[i]])}
        for i in wrong[:SHOWN]]}


def main() -> int:
    try:
        job = json.loads(sys.stdin.read())
        print(json.dumps(mistakes(job["store"], job["run"])))
    except Exception as err:  # shown on the run page
        print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

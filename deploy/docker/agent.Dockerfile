# gpusched node agent. Build from the repository root:
#   docker build -f deploy/docker/agent.Dockerfile -t ghcr.io/gpusched/gpusched-agent:0.1.0 .
# libnvidia-ml.so.1 is not in the image: the NVIDIA container runtime mounts the host driver's copy
# (runtimeClassName: nvidia in deploy/agent/daemonset.yaml), so the agent always matches the driver.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gpusched ./gpusched
COPY agents ./agents
COPY solver ./solver
COPY scheduler ./scheduler
COPY simulations ./simulations
COPY workload ./workload
ARG EXTRAS=agent,tpu
RUN pip install --no-cache-dir --prefix=/install ".[${EXTRAS}]"

FROM python:3.11-slim
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
USER 65532:65532
EXPOSE 9400
ENTRYPOINT ["gpusched", "agent"]
CMD ["--publish=k8s", "--port=9400"]

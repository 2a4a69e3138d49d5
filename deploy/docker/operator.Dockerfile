# gpusched operator. Build from the repository root:
#   docker build -f deploy/docker/operator.Dockerfile -t ghcr.io/gpusched/gpusched-operator:0.1.0 .
# The planner's embedded solver (CBC) ships inside PuLP's wheel; HiGHS comes with the highs extra.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gpusched ./gpusched
COPY agents ./agents
COPY solver ./solver
COPY scheduler ./scheduler
COPY simulations ./simulations
COPY workload ./workload
ARG EXTRAS=k8s,highs
RUN pip install --no-cache-dir --prefix=/install ".[${EXTRAS}]"

FROM python:3.11-slim
COPY --from=build /install /usr/local
ENV PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["gpusched", "operator"]
CMD ["--cluster-config=/etc/gpusched/cluster.yaml", "--metrics-port=8080"]

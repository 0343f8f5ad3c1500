# syntax=docker/dockerfile:1
# The service on an NVIDIA GPU: CUDA 12 runtime with cuDNN, Node 20, onnxruntime-node with its CUDA
# execution provider. Without a GPU the same image runs on the CPU (ORT_PROVIDERS=cuda,cpu falls back).
#   docker build -t multimodal-neurons .
#   docker run --gpus all -p 8080:8080 multimodal-neurons
#   docker run --gpus all -p 8080:8080 -v /path/to/rn50x4:/models/rn50x4:ro -e MODEL_DIR=/models/rn50x4 multimodal-neurons
FROM node:20-bookworm-slim AS node

FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    ORT_PROVIDERS=cuda,cpu \
    MODEL_DIR=/app/models/toyworld \
    DATA_DIR=/data

WORKDIR /app
COPY package.json package-lock.json ./
# Outside Docker onnxruntime-node's download of the CUDA provider stays off (package.json's
# allowScripts denies its install script); here we want it: ONNXRUNTIME_NODE_INSTALL=cuda12, and the
# script run explicitly when this npm skipped it.
RUN ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci --omit=dev \
 && (test -e node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so \
     || (cd node_modules/onnxruntime-node && ONNXRUNTIME_NODE_INSTALL=cuda12 node script/install)) \
 && npm cache clean --force
COPY src ./src
COPY models ./models
COPY openapi ./openapi
COPY web/dist ./web/dist
COPY tsconfig.json ./

RUN useradd --system --uid 10001 --home-dir /app mmn \
 && mkdir -p /data /models \
 && chown -R mmn /data /models
USER mmn

# Model directories (written by tools/export/export_clip.py) and the word index live on volumes.
VOLUME ["/models", "/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "--import", "tsx", "src/bin/server.ts"]
